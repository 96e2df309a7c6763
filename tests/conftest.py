"""Shared test helpers: where ../shared is, and a skip when it (or a capability) is absent.

A user's clone without ../shared skips those tests with the reason. CI sets ``FACELEARN_NO_SKIP=1``
(see .ci/run): there every such skip is a failure, so a CI without the data cannot pass quietly.
"""

from __future__ import annotations

import json
import logging
import os
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


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs shared by a module's tests (each start costs seconds here; the engine uses a session
    that is open and leaves it open), stopped after the module so that its processes do not idle through the
    rest of the suite on a 2-CPU machine."""
    ray = need("ray", "ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
