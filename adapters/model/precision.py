"""bf16 by capability: use bf16 where the hardware computes it natively, fp32 elsewhere.

On a CPU without bf16 instructions, bf16 matmuls are emulated and slower than fp32; with
``avx512_bf16`` or AMX (``amx_bf16``) they run at several times the fp32 rate (measured here:
matmul 2048² ≈ 960 vs 228 GFLOP/s). On CUDA, bf16 needs compute capability 8.0 or newer
(``torch.cuda.is_bf16_supported``).

>>> cpu_flags_have_bf16("flags\\t\\t: fpu sse2 avx512f avx512_bf16 amx_tile")
True
>>> cpu_flags_have_bf16("flags\\t\\t: fpu sse2 avx2")
False
>>> resolve_bf16(False, "cpu"), resolve_bf16(True, "cpu")
(False, True)
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

__all__ = [
    "BF16_CPU_FLAGS",
    "cpu_flags_have_bf16",
    "native_bf16",
    "precision_name",
    "resolve_bf16",
]

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags that mean the CPU computes bf16 dot products natively."""


def cpu_flags_have_bf16(cpuinfo: str) -> bool:
    """Whether any ``flags`` line of a ``/proc/cpuinfo`` text names a native bf16 flag."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and BF16_CPU_FLAGS & set(value.split()):
            return True
    return False


@functools.cache
def _cpu_has_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    try:
        return cpu_flags_have_bf16(Path(cpuinfo_path).read_text(errors="replace"))
    except OSError:  # not Linux, or /proc unreadable: assume no native bf16
        return False


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bf16 natively (CPU flags, or a CUDA GPU that supports it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bf16()
    return False


def resolve_bf16(override: bool | None, device: torch.device | str = "cpu") -> bool:
    """``override`` when given, else :func:`native_bf16` of ``device``."""
    return native_bf16(device) if override is None else bool(override)


def precision_name(bf16: bool) -> str:
    """``"bf16"`` or ``"fp32"`` (used in logs, cache keys and benchmark reports).

    >>> precision_name(True), precision_name(False)
    ('bf16', 'fp32')
    """
    return "bf16" if bf16 else "fp32"
