"""``train.compile``: a compiled backbone trains, and a killed compiled run resumes to the same weights."""

from __future__ import annotations

import torch
from test_engine import assert_same_weights, kill_at_step_5, tiny_config

from facelearn.train.build import build_trainer
from facelearn.train.checkpoint import step_checkpoints


def test_compiled_run_resumes_exactly_and_auto_stays_eager_for_short_runs(tmp_path):
    torch.set_num_threads(1)
    assert not build_trainer(tiny_config(tmp_path / "auto")).compiled  # 6 steps: compilation would dominate
    compiled = ["train.compile=true"]
    straight = build_trainer(tiny_config(tmp_path / "straight", *compiled))
    assert straight.compiled
    straight.fit()
    kill_at_step_5(build_trainer(tiny_config(tmp_path / "resumed", *compiled)))
    assert [p.name for p in step_checkpoints(tmp_path / "resumed")] == ["step_0000003.pt"]
    assert build_trainer(tiny_config(tmp_path / "resumed", *compiled)).fit()["step"] == 6
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")  # keys too: the eager module's
