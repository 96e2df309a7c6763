"""What a training step could reach on this machine, and what it computes: the matrix-product peak and the FLOP
count of a step.

* :func:`matmul_peak`: GFLOP/s of one large square matrix product (``2n³`` FLOP) in a dtype, on the current
  thread count, the best of a few: what oneDNN's best-shaped kernel reaches, the ceiling a convolution's
  GEMMs can approach.
* :func:`flop_per_image`: the FLOP ``torch.utils.flop_counter`` counts in one call of a training step
  (forward and backward, the head included; matrix products and convolutions only, so batch norm, PReLU and
  the optimizer count as zero), divided by the batch; and its split by operator. torch's formula for a
  convolution's backward ignores the groups in the weight gradient (torch 2.13: a depthwise 3×3 convolution
  over 64 channels counts 65× its forward instead of 2×), which would inflate MobileFaceNet's count 2.5×;
  :func:`convolution_backward_flop` counts each gradient as the forward's products.
* :func:`operator_profile`: where a step's time goes by operator (``torch.profiler``, self CPU time), and
  the rate the convolutions reach inside it.
"""

from __future__ import annotations

import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_backward_flop, conv_flop_count

PEAK_SIZE = 4096  # 137 GFLOP a product: long enough to time, small enough to repeat


def matmul_peak(dtype: torch.dtype, size: int = PEAK_SIZE, repeats: int = 5) -> float:
    """The best GFLOP/s of ``repeats`` products of two ``size``×``size`` matrices (after one warm-up)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def machine_peak(size: int = PEAK_SIZE, repeats: int = 5) -> dict:
    """bf16 and fp32 matrix-product peaks on the current thread count, with the load average beside them."""
    return {
        "threads": torch.get_num_threads(),
        "matrix_size": size,
        "repeats": repeats,
        "bf16_gflops": round(matmul_peak(torch.bfloat16, size, repeats), 1),
        "fp32_gflops": round(matmul_peak(torch.float32, size, repeats), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def convolution_backward_flop(grad_out_shape, x_shape, w_shape, *args, **kwargs) -> int:
    """A convolution's backward: the input gradient and the weight gradient each cost the forward's products
    (``2·N·C_out·C_in/groups·k²·H_out·W_out``), for the gradients asked for (``output_mask``)."""
    transposed, output_mask = args[4], args[7]
    if transposed:  # none in these backbones; torch's own formula
        return conv_backward_flop(grad_out_shape, x_shape, w_shape, *args, **kwargs)
    return conv_flop_count(x_shape, w_shape, grad_out_shape) * (int(output_mask[0]) + int(output_mask[1]))


def flop_per_image(step, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, float]]:
    """(GFLOP per image of one call of ``step(images, labels)``, GFLOP per image by operator)."""
    mapping = {torch.ops.aten.convolution_backward: convolution_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        step(images, labels)
    by_operator = {str(op).split(".")[-1]: count for op, count in counter.get_flop_counts()["Global"].items()}
    batch = len(images)
    return counter.get_total_flops() / batch / 1e9, {op: n / batch / 1e9 for op, n in by_operator.items()}


def operator_profile(step, images: torch.Tensor, labels: torch.Tensor, steps: int = 2, top: int = 12) -> dict:
    """Self CPU time by operator over ``steps`` calls (after the caller's warm-up): the ``top`` operators with
    their share, and the seconds per step in convolutions (forward and backward) and matrix products."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step(images, labels)
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)

    def seconds(match) -> float:
        return sum(e.self_cpu_time_total for e in events if match(e.key)) / 1e6 / steps

    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return {
        "profiled_steps": steps,
        "seconds_per_step": round(total / 1e6 / steps, 3),
        "convolution_seconds_per_step": round(seconds(lambda key: "convolution" in key), 3),
        "matmul_seconds_per_step": round(seconds(lambda key: key in ("aten::mm", "aten::addmm", "aten::bmm")), 3),
        "top_operators": [
            {
                "operator": e.key,
                "share": round(e.self_cpu_time_total / total, 4),
                "seconds_per_step": round(e.self_cpu_time_total / 1e6 / steps, 4),
            }
            for e in events[:top]
        ],
    }
