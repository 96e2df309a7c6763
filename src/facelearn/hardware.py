"""Where training and inference run, and in which precision: chosen from what the machine has."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

import torch

from .distributed import local_rank

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 kernels (AVX-512 BF16, AMX). Without them (AVX2 only) bf16
    autocast runs ~10× slower than fp32 here: MobileFaceNet fwd+bwd, 64 faces, 7.9 s against 0.8 s."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """``auto``: fp16 on CUDA, bf16 on a CPU with native bf16, otherwise fp32 (None)."""
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return torch.bfloat16 if mode == "bf16" else torch.float16


COMPILE_AUTO_MIN_STEPS = 2000  # below this, ~90 s of compilation on a CPU is not won back


def precision_name(amp_dtype: torch.dtype | None) -> str:
    """What a step computes in: ``fp32`` (no autocast), ``bf16`` or ``fp16`` autocast."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]


def compile_backbone(backbone: torch.nn.Module, train) -> bool:
    """``train.compile``: compile the backbone's forward in place (``nn.Module.compile``: the state
    dict, checkpoints and resume are unchanged). ``auto`` compiles runs of at least
    ``COMPILE_AUTO_MIN_STEPS`` steps, where the ~1.3× faster steps repay the compilation; the demo
    and the tests stay eager."""
    if train.compile is True or (train.compile == "auto" and train.steps >= COMPILE_AUTO_MIN_STEPS):
        backbone.compile()
        return True
    return False


def keep_freed_memory() -> bool:
    """Let glibc keep the memory of freed tensors for the next step instead of returning it.

    glibc serves every allocation above 32 MB (and smaller ones, until its threshold adapts) with
    a fresh ``mmap`` and unmaps it on ``free``. A CPU training step allocates and frees gigabytes of
    activations, so every step the kernel maps and zeroes them again: MobileFaceNet at 112 px,
    batch 64, took ~830k page faults and 1.1 s of kernel time a step here. With the thresholds
    raised the freed memory is reused: the same step runs ~1.2× faster for ~10 % more peak memory
    (``benchmarks/vs_arcface_torch.py``). A setting already in the environment
    (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) is left as it is; outside glibc this
    does nothing. Returns whether it applied."""
    if not sys.platform.startswith("linux") or any(
        k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no glibc mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if applied:
        log.debug("glibc keeps freed memory below 1 GiB for reuse (MALLOC_MMAP_THRESHOLD_ overrides)")
    return applied
