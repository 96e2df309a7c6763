"""The training engine: exact resume, atomic checkpoints, divergence, fine-tuning, bad input."""

from __future__ import annotations

import pytest
import torch
from helpers import NOT_MBF, assert_same_weights, kill_at_step_5, tiny_config, weights, write_folder

from facelearn.errors import FacelearnError
from facelearn.models.checkpoint import CheckpointError, load_checkpoint, step_checkpoints
from facelearn.train.build import build_trainer
from facelearn.train.engine import TrainingDiverged
from facelearn.train.schedule import lr_factor


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    build_trainer(tiny_config(tmp_path / "straight")).fit()
    kill_at_step_5(build_trainer(tiny_config(tmp_path / "resumed")))
    assert [p.name for p in step_checkpoints(tmp_path / "resumed")] == ["step_0000003.pt"]
    summary = build_trainer(tiny_config(tmp_path / "resumed")).fit()
    assert summary["step"] == 6
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    # and training did move the weights
    fresh = build_trainer(tiny_config(tmp_path / "fresh", "train.steps=0")).task.state_dict()
    assert not torch.equal(fresh["head.weight"], weights(tmp_path / "straight")["head.weight"])


def test_run_directory_holds_config_checkpoints_metrics_and_plots(tmp_path):
    summary = build_trainer(tiny_config(tmp_path, "train.keep_last=1")).fit()
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "metrics.json", "train.log", "best.pt", "backbone.pt", "tensorboard", "eval"} <= names
    assert "step 6 unseen accuracy" in (tmp_path / "train.log").read_text()
    assert [p.name for p in step_checkpoints(tmp_path)] == ["step_0000006.pt"]  # keep-last-1
    assert {"unseen.json", "unseen_scores.png", "unseen_roc.png"} <= {p.name for p in (tmp_path / "eval").iterdir()}
    assert 0.0 <= summary["verification"]["unseen"]["accuracy"] <= 1.0
    state = load_checkpoint(tmp_path / "step_0000006.pt")
    assert {"task", "optimizer", "scheduler", "scaler", "rng", "step", "config"} <= set(state)


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_stays(tmp_path):
    build_trainer(tiny_config(tmp_path)).fit()
    newest = step_checkpoints(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt.*step_0000003.pt"):
        build_trainer(tiny_config(tmp_path, "train.steps=9")).fit()
    load_checkpoint(tmp_path / "step_0000003.pt")  # still intact


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    trainer = build_trainer(tiny_config(tmp_path))
    original = trainer.task.forward
    calls = {"n": 0}

    def poisoned(batch):
        calls["n"] += 1
        output = original(batch)
        if calls["n"] == 5:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(trainer.task, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"nan at step 5.*step_0000003.pt"):
        trainer.fit()
    assert [p.name for p in step_checkpoints(tmp_path)] == ["step_0000003.pt"]
    load_checkpoint(tmp_path / "step_0000003.pt")


def test_labels_outside_the_head_are_rejected_before_training(tmp_path):
    with pytest.raises(ValueError, match="labels up to 5 but the head has 4 classes"):
        build_trainer(tiny_config(tmp_path, "data.num_classes=4")).fit()
    assert not step_checkpoints(tmp_path)


def test_resume_with_another_class_count_is_a_clear_error(tmp_path):
    build_trainer(tiny_config(tmp_path, "train.steps=3")).fit()
    with pytest.raises(FacelearnError, match=r"another config \(data.num_identities: 6 -> 7; train.steps: 3 -> 6\)"):
        build_trainer(tiny_config(tmp_path, "data.num_identities=7")).fit()
    with pytest.raises(CheckpointError, match="another model or class count"):
        build_trainer(tiny_config(tmp_path, "data.num_identities=7", "train.resume=force")).fit()


def test_fine_tuning_starts_from_backbone_weights(tmp_path):
    build_trainer(tiny_config(tmp_path / "base")).fit()
    trainer = build_trainer(
        tiny_config(tmp_path / "tuned", f"train.init_backbone={tmp_path / 'base' / 'backbone.pt'}", "train.steps=0")
    )
    trainer.fit()
    base = torch.load(tmp_path / "base" / "backbone.pt", weights_only=True)
    for key, value in trainer.task.backbone.state_dict().items():
        assert torch.equal(value, base[key]), key
    wrong = tiny_config(
        tmp_path / "wrong", f"train.init_backbone={tmp_path / 'base' / 'backbone.pt'}", "model.name=iresnet18", *NOT_MBF
    )
    with pytest.raises(CheckpointError, match="does not match IResNet"):
        build_trainer(wrong).fit()


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    torch.set_num_threads(1)
    common = ["train.amp=off", "train.steps=2", "eval.sets=[]", "train.clip_grad_norm=0", "optim.weight_decay=0"]
    big = build_trainer(tiny_config(tmp_path / "big", *common, "train.batch_size=8"))
    big.task.backbone.eval()  # BatchNorm statistics differ between 1×8 and 2×4: freeze them
    accum = build_trainer(tiny_config(tmp_path / "acc", *common, "train.batch_size=4", "train.grad_accum=2"))
    accum.task.backbone.eval()
    for trainer in (big, accum):
        trainer.task.train = lambda mode=True: None  # keep eval-mode BatchNorm in fit()
        trainer.fit()
    for (key, a), b in zip(big.task.state_dict().items(), accum.task.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)


def test_schedules():
    from facelearn.config import ScheduleConfig

    warm = ScheduleConfig(warmup_steps=10, decay="cosine")
    assert lr_factor(0, 100, warm) == pytest.approx(0.1)
    assert lr_factor(10, 100, warm) == pytest.approx(1.0)
    assert lr_factor(55, 100, warm) == pytest.approx(0.5)
    assert lr_factor(100, 100, warm) == pytest.approx(0.0)
    poly = ScheduleConfig(warmup_steps=0, decay="poly", power=2.0)
    assert lr_factor(50, 100, poly) == pytest.approx(0.25)
    step = ScheduleConfig(warmup_steps=0, decay="step", milestones=[0.5, 0.75], gamma=0.1)
    assert [lr_factor(s, 100, step) for s in (49, 50, 80)] == pytest.approx([1.0, 0.1, 0.01])


def test_training_on_a_folder_skips_and_counts_an_unreadable_image(tmp_path):

    write_folder(tmp_path / "faces", corrupt=True)  # 6 good images and broken.jpg
    config = tiny_config(
        tmp_path / "run", "data.kind=folder", f"data.root={tmp_path / 'faces'}", "train.batch_size=7", "train.steps=2"
    )
    summary = build_trainer(config).fit()
    assert summary["skipped_images"] == 2  # every batch holds all 7 images, one of them unreadable
    assert "broken.jpg" in (tmp_path / "run" / "train.log").read_text()
    strict = tiny_config(
        tmp_path / "strict",
        "data.kind=folder",
        f"data.root={tmp_path / 'faces'}",
        "train.batch_size=7",
        "data.strict=true",
    )
    with pytest.raises(Exception, match="broken.jpg"):
        build_trainer(strict).fit()


def test_a_new_task_is_one_subclass_registered_by_name(tmp_path):
    from facelearn.models import build_backbone
    from facelearn.train.tasks import TASKS, ClassificationTask, StepOutput, Task

    config = tiny_config(tmp_path)
    backbone = build_backbone(config.model, 32)
    head = build_trainer(config).task.head
    with pytest.raises(TypeError, match="abstract"):
        Task(backbone, head, config, None)  # forward and loader are the contract

    @TASKS.register("test_halved")
    class HalvedLoss(ClassificationTask):
        def forward(self, batch: dict) -> StepOutput:
            loss = super().forward(batch).loss
            return StepOutput(loss / 2, {"full": loss.item()})

    trainer = build_trainer(tiny_config(tmp_path / "run", "train.task=test_halved", "train.steps=3"))
    assert isinstance(trainer.task, HalvedLoss) and trainer.fit()["step"] == 3
    assert " full " in (tmp_path / "run" / "train.log").read_text()


def test_auto_precision_uses_bf16_only_where_the_cpu_has_native_bf16(monkeypatch):
    from facelearn import hardware as engine

    cpu = torch.device("cpu")
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: True)
    assert engine.resolve_amp("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: False)
    assert engine.resolve_amp("auto", cpu) is None  # AVX2 only: bf16 autocast is ~10× slower than fp32
    assert engine.resolve_amp("bf16", cpu) == torch.bfloat16  # asked for explicitly: honoured
    assert engine.resolve_amp("auto", torch.device("cuda")) == torch.float16


def test_a_finished_run_leaves_no_data_worker_behind(tmp_path):
    """A data worker ignores SIGTERM (signals.py), so one left alive after fit would hang the process's exit:
    multiprocessing joins its children there, and their terminate() is a SIGTERM."""
    import multiprocessing

    trainer = build_trainer(tiny_config(tmp_path / "run", "data.num_workers=1", "train.steps=3"))
    trainer.fit()
    assert multiprocessing.active_children() == []
