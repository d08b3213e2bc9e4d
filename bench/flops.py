"""The machine's matmul FLOP bound, measured in the bench run that reports against it.

Shared by bench_model.py and bench_serving.py (run as ``python bench/<script>.py``, so this
folder is on ``sys.path``). bench_ingest.py measures I/O, not FLOPs, and does not use it.
"""

from __future__ import annotations

import time

import torch

from lsat.adapters.model.precision import native_bf16

__all__ = ["flop_bounds", "matmul_gflops"]


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5, trials: int = 3) -> float:
    """GFLOP/s of a ``size``² @ ``size``² matmul in ``dtype``: one warm-up, then the best of
    ``trials`` timings of ``repeats`` products (a bound is the best the machine can do, so a
    trial slowed by other work on the machine must not lower it)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9)
    return best


EMULATED_BF16_SIZE = 256
"""Without native bf16 a product runs ~50-500x slower than fp32 (emulated): a 2048² bf16 bound
took over 15 minutes on an avx2-only CPU, so it is measured on this smaller size instead (a
lower rate than a large product would reach, which only matters to a bound nobody scores at)."""


def flop_bounds(size: int = 2048) -> tuple[float, float]:
    """``(fp32, bf16)`` matmul GFLOP/s, measured now (best of three trials each); the bf16 rate
    on ``EMULATED_BF16_SIZE``² products where the CPU has no native bf16."""
    bf16_size = size if native_bf16() else min(size, EMULATED_BF16_SIZE)
    return matmul_gflops(torch.float32, size), matmul_gflops(torch.bfloat16, bf16_size)
