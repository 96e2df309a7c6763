"""README.md and docs/: result tables agree with their JSON, the front page stays short, links resolve."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "docs_tables.py"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_every_table_matches_its_json():
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_changed_number_fails_the_check(tmp_path):
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "results.md"
    text = page.read_text(encoding="utf-8")
    assert "87.56 ± 0.75 %" in text  # the LFW recipe's MobileFaceNet, from lfw_recipe.json
    page.write_text(text.replace("87.56 ± 0.75 %", "87.65 ± 0.75 %", 1), encoding="utf-8")

    result = check("--docs", str(tmp_path / "README.md"), str(tmp_path / "docs"))

    assert result.returncode == 1
    assert "table lfw_recipe differs from lfw_recipe.json" in result.stdout
    assert "87.65" in result.stdout and "87.56" in result.stdout
    assert page.read_text(encoding="utf-8").count("87.65") == 1  # --check writes nothing


def test_a_changed_json_fails_the_check(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REPO / "benchmarks" / "results", results)
    serve = results / "serve_load.json"
    serve.write_text(serve.read_text(encoding="utf-8").replace('"concurrency": 64', '"concurrency": 65'))

    result = check("--results", str(results))

    assert result.returncode == 1
    assert "table serve_load_aligned differs" in result.stdout
    assert "table serve_load_photo differs" in result.stdout


@pytest.mark.parametrize(
    ("page", "error"),
    [
        ("<!-- table: no_such_table -->\n| a |\n|---|\n\n<!-- /table -->\n", "unknown table 'no_such_table'"),
        ("<!-- table: lfw_recipe -->\n| a |\n|---|\n\n", "has no <!-- /table -->"),
    ],
)
def test_a_bad_marker_is_an_error(tmp_path, page, error):
    (tmp_path / "page.md").write_text(page, encoding="utf-8")

    result = check("--docs", str(tmp_path / "page.md"))

    assert result.returncode == 1
    assert error in result.stderr


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move the detail to docs/"


def test_every_relative_link_points_to_a_file():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or a heading of the same page
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
    assert len(PAGES) > 5  # the docs pages are there to be checked
