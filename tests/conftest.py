"""Shared test helpers: where ../shared is, and a skip when it (or a capability) is absent.

A user's clone without ../shared skips those tests with the reason. CI sets ``FACELEARN_NO_SKIP=1``
(see .ci/run): there every such skip is a failure, so a CI without the data cannot pass quietly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("FACELEARN_SHARED", REPO.parent / "shared"))


SHARED = shared_root()


def skip_unless_allowed(reason: str) -> None:
    """Skip with ``reason``, or fail where ``FACELEARN_NO_SKIP=1`` (CI)."""
    if os.environ.get("FACELEARN_NO_SKIP") == "1":
        pytest.fail(f"{reason} (FACELEARN_NO_SKIP=1: this test must run here)")
    pytest.skip(reason)


def shared_path(*parts: str) -> Path:
    """A file under ../shared (or $FACELEARN_SHARED); the test is skipped if it is missing."""
    path = shared_root().joinpath(*parts)
    if not path.exists():
        skip_unless_allowed(f"{path} not found: set FACELEARN_SHARED to the shared data folder")
    return path


def load_json(*parts: str) -> dict:
    return json.loads(shared_path(*parts).read_text())


def need(module: str, extra: str):
    """Import an optional dependency, or skip (fail in CI) naming the extra that installs it."""
    try:
        return __import__(module)
    except ImportError:
        skip_unless_allowed(f"{module} is not installed: pip install -e '.[{extra}]'")


@pytest.fixture(scope="session")
def lfw_people(tmp_path_factory):
    """A small model trained on real LFW-a photos (two minutes), for the deployment and service tests."""
    from lfw_people import train_lfw_people

    reuse = os.environ.get("FACELEARN_TEST_LFW_PEOPLE")  # a developer's folder kept between runs; CI trains anew
    if reuse and (Path(reuse) / "model.pt").exists():
        return train_lfw_people(Path(reuse), reuse=True)
    return train_lfw_people(Path(reuse) if reuse else tmp_path_factory.mktemp("lfw_people"))


def error_of(response) -> tuple[int, str]:
    """(status, code) of the service's one error envelope, checking its shape."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message"}, body
    assert body["error"]["status"] == response.status_code
    return response.status_code, body["error"]["code"]


def image_files(paths, field: str = "images") -> list:
    """Multipart file parts (httpx ``files=``) of photos on disk."""
    return [(field, (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def header_lying_jpeg(photo: Path, width: int = 9000, height: int = 4000) -> bytes:
    """A real JPEG whose frame header (SOF0) is patched to claim width×height; its data still ends in EOI."""
    import struct

    data = bytearray(photo.read_bytes())
    frame = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, frame + 5, height, width)
    return bytes(data)


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak since start, or since reset_peak_memory) of a process, in MB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}


def reset_peak_memory(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium."""
    session = start_chromium()
    yield session
    session.quit()


def start_chromium(*arguments: str):
    """A headless Chromium session, with more command-line ``arguments`` (a fake camera, say)."""
    need("selenium", "dev")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        skip_unless_allowed("no browser: apt-get install chromium chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *arguments):
        options.add_argument(argument)
    return webdriver.Chrome(service=DriverService(executable_path=driver), options=options)


def log_size(served) -> int:
    """Bytes in a served process's log so far (to measure what a request adds)."""
    return served.log.stat().st_size


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs shared by a module's tests (each start costs seconds here; the engine uses a session
    that is open and leaves it open), stopped after the module so that its processes do not idle through the
    rest of the suite on a 2-CPU machine."""
    ray = need("ray", "ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run of the demo recipe with ``helpers.TINY`` (seconds of training): its folder, best.pt inside."""
    from helpers import TINY

    from facelearn.cli import main, recipe_path

    run = tmp_path_factory.mktemp("trained")
    assert main(["train", str(recipe_path("demo")), *TINY, f"train.output_dir={run}"]) == 0
    return run
