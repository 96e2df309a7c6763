"""``train.compile``: a compiled backbone trains, and a killed compiled run resumes to the same weights."""

from __future__ import annotations

import pytest
import torch
from test_engine import tiny_config, weights

from facelearn.train.build import build_trainer
from facelearn.train.checkpoint import step_checkpoints


def test_compiled_run_resumes_exactly_and_auto_stays_eager_for_short_runs(tmp_path):
    torch.set_num_threads(1)
    assert not build_trainer(tiny_config(tmp_path / "auto")).compiled  # 6 steps: compilation would dominate
    compiled = ["train.compile=true"]
    straight = build_trainer(tiny_config(tmp_path / "straight", *compiled))
    assert straight.compiled
    straight.fit()
    killed = build_trainer(tiny_config(tmp_path / "resumed", *compiled))
    original, calls = killed.task.forward, {"n": 0}

    def killed_at_step_5(batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as a kill between two checkpoints
        return original(batch)

    killed.task.forward = killed_at_step_5
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert [p.name for p in step_checkpoints(tmp_path / "resumed")] == ["step_0000003.pt"]
    assert build_trainer(tiny_config(tmp_path / "resumed", *compiled)).fit()["step"] == 6
    first, second = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert first.keys() == second.keys()  # the compiled module's state dict is the eager one's
    for name in first:
        assert torch.equal(first[name], second[name]), name
