"""The machine's matmul FLOP bound, measured in the bench run that reports against it.

Shared by bench_model.py and bench_serving.py (run as ``python bench/<script>.py``, so this
folder is on ``sys.path``). bench_ingest.py measures I/O, not FLOPs, and does not use it.
"""

from __future__ import annotations

import time

import torch

__all__ = ["flop_bounds", "matmul_gflops"]


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``² @ ``size``² matmul in ``dtype`` (one warm-up, then ``repeats``)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def flop_bounds(size: int = 2048) -> tuple[float, float]:
    """``(fp32, bf16)`` matmul GFLOP/s, measured now."""
    return matmul_gflops(torch.float32, size), matmul_gflops(torch.bfloat16, size)
