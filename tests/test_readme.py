"""The README's Python example runs as written: on a calibrated model trained on LFW-a photos, with real
photos, the detector's weights where a user puts them ($FACELEARN_HOME/weights/retinaface)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest
from conftest import REPO, shared_path

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


def readme_example() -> str:
    found = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert found, "README.md has no ```python example"
    return found.group(1)


def test_the_readme_python_example_runs_on_real_photos(lfw_people, tmp_path):
    code = readme_example()
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    shutil.copy(lfw_people.model, tmp_path / "runs" / "demo" / "best.pt")  # a calibrated checkpoint
    person, photos = next(iter(lfw_people.enrolled.items()))
    shutil.copy(photos[0], tmp_path / "ada_1.jpg")
    shutil.copy(photos[1], tmp_path / "ada_2.jpg")
    shutil.copy(lfw_people.probes[person], tmp_path / "visitor.jpg")  # another photo of the same person
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "retinaface").symlink_to(shared_path("weights", "retinaface"))
    environment = {**os.environ, "FACELEARN_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    identified, verified = done.stdout.strip().splitlines()
    assert "'candidates': [{'subject': 'ada'" in identified and "'fmr': 0.001" in identified
    assert "'same': " in verified and "'threshold': " in verified and "'fmr': 0.001" in verified
    with sqlite3.connect(tmp_path / "people.db") as db:
        assert db.execute("SELECT name FROM subjects").fetchall() == [("ada",)]
