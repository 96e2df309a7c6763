"""benchmarks/gpu_check.py is ready before a GPU is: its plumbing runs on a CPU (--device cpu --smoke) and
every check comes back ok, the resumed run with the same weights."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


def test_the_gpu_check_runs_every_check_on_a_cpu(tmp_path):
    output = tmp_path / "gpu_check.json"
    script = REPO / "benchmarks" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--smoke", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    checks = json.loads(output.read_text())["checks"]
    assert set(checks) == {"train_steps", "resume", "loader", "recognizer", "ddp"}
    failed = {name: c.get("error") for name, c in checks.items() if c["status"] != "ok"}
    assert not failed
    assert checks["resume"]["same_weights"] is True
    assert checks["ddp"]["backend"] == "gloo" and checks["ddp"]["every_parameter_has_a_gradient"]
    assert checks["train_steps"]["rows"][0]["images_per_second"] > 0
