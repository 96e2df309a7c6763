"""ShrinkTeaNet distillation: the losses against their formulas, a frozen teacher, adapters routed
through the teacher's later stages, and errors before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import NOT_MBF, tiny_config

from facelearn.losses.distill import angular_distillation, hinton_distillation, l2_distillation
from facelearn.models.checkpoint import CheckpointError, step_checkpoints
from facelearn.train.build import build_trainer


def test_angular_loss_is_the_formula_and_ignores_norms():
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    cos = (t * s).sum(1) / np.linalg.norm(t, axis=1) / np.linalg.norm(s, axis=1)
    teacher, student = torch.tensor(t), torch.tensor(s)
    assert angular_distillation(teacher, student, 1).item() == pytest.approx(np.mean(1 - cos), rel=1e-5)
    assert angular_distillation(teacher, student, 2).item() == pytest.approx(np.mean((1 - cos) ** 2), rel=1e-5)
    assert angular_distillation(teacher, 3 * teacher, 2).item() == pytest.approx(0, abs=1e-6)
    assert l2_distillation(teacher, 3 * teacher).item() == pytest.approx(np.mean(4 * (t**2).sum(1)), rel=1e-5)
    with pytest.raises(ValueError, match="1 or 2"):
        angular_distillation(teacher, student, 3)


def test_hinton_loss_is_the_formula():
    rng = np.random.default_rng(1)
    zt, zs, temperature = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), 3.0

    def softmax(z):
        e = np.exp(z / temperature - (z / temperature).max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = softmax(zt), softmax(zs)
    expected = temperature**2 * np.mean(np.sum(p * (np.log(p) - np.log(q)), 1))
    got = hinton_distillation(torch.tensor(zt), torch.tensor(zs), temperature).item()
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("teacher")
    build_trainer(tiny_config(run, "model.name=iresnet18", *NOT_MBF, "model.embedding_size=48")).fit()
    return str(step_checkpoints(run)[-1])


def distill(run, teacher, *overrides):
    return tiny_config(run, "train.task=distill", f"distill.teacher={teacher}", *overrides)


def test_teacher_gets_no_gradient_and_does_not_change(tmp_path, teacher_checkpoint):
    trainer = build_trainer(distill(tmp_path, teacher_checkpoint, "distill.stages=[2,3]"))
    teacher = trainer.task.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}  # running BN statistics included
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not any(
        p is q for p in teacher.parameters() for group in trainer.optimizer.param_groups for q in group["params"]
    )
    trainer.fit()
    assert not teacher.training
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)
    assert trainer.task.projection is not None  # 32-d student, 48-d teacher


def test_checkpoints_hold_the_student_only_and_resume(tmp_path, teacher_checkpoint):
    trainer = build_trainer(distill(tmp_path, teacher_checkpoint, "distill.stages=[3]", "train.steps=2"))
    trainer.fit()
    saved = torch.load(step_checkpoints(tmp_path)[-1], weights_only=True)["task"]
    assert not any(key.startswith("teacher") for key in saved)
    assert any(key.startswith("adapters.3.") for key in saved)
    resumed = build_trainer(
        distill(tmp_path, teacher_checkpoint, "distill.stages=[3]", "train.steps=3", "train.resume=force")
    )
    resumed.fit()
    assert resumed.step == 3
    for key, value in trainer.task.teacher.state_dict().items():
        torch.testing.assert_close(resumed.task.teacher.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_adapters_route_through_the_teachers_later_stages(tmp_path, teacher_checkpoint):
    trainer = build_trainer(distill(tmp_path, teacher_checkpoint, "distill.stages=[2]"))
    task, teacher = trainer.task, trainer.task.teacher
    calls = {name: 0 for name in ("layer2", "layer3", "layer4")}
    for name in calls:
        getattr(teacher, name).register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    batch = next(iter(trainer.task.loader(0)))
    output = task(batch)
    # the teacher's own pass runs every stage once; the stage-2 route adds stages 3 and 4 only
    assert calls == {"layer2": 1, "layer3": 2, "layer4": 2}
    assert task.stage_weight(2) == pytest.approx(0.125) and task.stage_weight(4) == pytest.approx(0.5)
    output.loss.backward()
    assert task.adapters["2"].project[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert {"angular/final", "angular/stage2", "classification"} <= set(output.metrics)


def test_baselines_build_and_step(tmp_path, teacher_checkpoint):
    for method in ("l2", "hinton", "none"):
        trainer = build_trainer(distill(tmp_path / method, teacher_checkpoint, f"distill.method={method}"))
        output = trainer.task(next(iter(trainer.task.loader(0))))
        assert torch.isfinite(output.loss)


def test_bad_teachers_and_stages_fail_before_training(tmp_path, teacher_checkpoint):
    with pytest.raises(ValueError, match="student has 4 stages, the teacher 4"):
        build_trainer(distill(tmp_path, teacher_checkpoint, "distill.stages=[5]"))
    with pytest.raises(ValueError, match="32 px"):
        build_trainer(distill(tmp_path, teacher_checkpoint, "data.image_size=64"))
    backbone_only = tmp_path / "plain.pt"
    torch.save(torch.load(teacher_checkpoint, weights_only=True)["task"], backbone_only)
    with pytest.raises(CheckpointError, match="missing keys"):
        build_trainer(distill(tmp_path, backbone_only, "distill.teacher_model=iresnet34"))
