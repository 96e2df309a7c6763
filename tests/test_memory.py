"""Training and embedding on a CPU keep freed memory for reuse (``keep_freed_memory``): a step's
(or a batch's) activations are not page-faulted in again every time, and a user's own glibc setting wins."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="a glibc allocator setting"
)

SLACK = 256  # pages (1 MB) faulted by anything else meanwhile (a thread's stack): seen at 16,385 against 16,384
ALLOCATE_64_MB_FIVE_TIMES = """
import resource, sys, torch
from facelearn.config import load_config
from facelearn.train.build import build_trainer

if sys.argv[1] == "trainer":  # building a CPU trainer is what applies the setting
    build_trainer(load_config(None, ["data.kind=synthetic", "model.embedding_size=8", "train.output_dir=unused"]))
if sys.argv[1] == "embedder":  # so is building a CPU embedder (the Recognizer's, the service's)
    from facelearn.config import ModelConfig
    from facelearn.deploy.backends import TorchEmbedder
    from facelearn.models import build_backbone

    TorchEmbedder(build_backbone(ModelConfig(name="mobilefacenet", embedding_size=8), 32), 32, device="cpu")

def activation():
    torch.empty(16 * 2**20).fill_(1.0)  # 64 MB, freed at once: glibc maps such blocks anew each time

activation()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    activation()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str, **environment: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | environment
    done = subprocess.run(
        [sys.executable, "-c", ALLOCATE_64_MB_FIVE_TIMES, mode], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_a_cpu_trainer_keeps_freed_activations_instead_of_faulting_them_in_every_step():
    pages = 5 * 64 * 2**20 // 4096
    assert page_faults("plain") > 0.9 * pages  # glibc's default: every 64 MB tensor is fresh pages
    assert page_faults("trainer") <= pages // 5 + SLACK  # kept: the freed block is reused (at most one fresh one)


def test_a_cpu_embedder_keeps_freed_activations_too():
    pages = 5 * 64 * 2**20 // 4096
    assert page_faults("embedder") <= pages // 5 + SLACK


def test_the_users_own_malloc_setting_is_left_as_it_is():
    assert page_faults("trainer", MALLOC_MMAP_THRESHOLD_=str(128 * 1024)) > 0.9 * 5 * 64 * 2**20 // 4096
