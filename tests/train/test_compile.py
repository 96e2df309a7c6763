"""``train.compile``: a compiled backbone trains, and a killed compiled run resumes to the same weights;
the run records how it computed (metrics.json and train.log)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import assert_same_weights, kill_at_step_5, tiny_config

from facelearn.models.checkpoint import step_checkpoints
from facelearn.train.build import build_trainer

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


def test_compiled_run_resumes_exactly_and_auto_stays_eager_for_short_runs(tmp_path):
    torch.set_num_threads(1)
    assert not build_trainer(tiny_config(tmp_path / "auto")).compiled  # 6 steps: compilation would dominate
    compiled = ["train.compile=true"]
    straight = build_trainer(tiny_config(tmp_path / "straight", *compiled))
    assert straight.compiled
    assert straight.fit()["compiled"] is True
    kill_at_step_5(build_trainer(tiny_config(tmp_path / "resumed", *compiled)))
    assert [p.name for p in step_checkpoints(tmp_path / "resumed")] == ["step_0000003.pt"]
    assert build_trainer(tiny_config(tmp_path / "resumed", *compiled)).fit()["step"] == 6
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")  # keys too: the eager module's


def test_a_run_records_the_precision_and_mode_it_trained_in(tmp_path):
    summary = build_trainer(tiny_config(tmp_path / "run", "train.amp=off")).fit()
    assert (summary["precision"], summary["compiled"]) == ("fp32", False)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["precision"] == "fp32"
    assert "in fp32, the backbone eager" in (tmp_path / "run" / "train.log").read_text()
