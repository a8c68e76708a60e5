"""Training precision: bf16 autocast where the hardware computes bf16 natively, else fp32."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path

import torch

DTYPES = ("auto", "float32", "bfloat16")
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # x86 flags of bf16 dot-product instructions


@cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16).

    Without them torch emulates bf16 matmuls, which is slower than fp32. Read from
    /proc/cpuinfo (Linux); elsewhere this says False and training stays fp32.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = {
        flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()
    }
    return bool(flags & NATIVE_BF16_FLAGS)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype that `name` means on `device`: "auto" is bf16 on a CUDA GPU with bf16
    and on a CPU with native bf16, fp32 elsewhere."""
    if name not in DTYPES:
        raise ValueError(f"unknown training dtype {name!r}: choose one of {', '.join(DTYPES)}")
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = device.type == "cpu" and cpu_has_native_bf16()
    return torch.bfloat16 if native else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """Mixed precision for the model's matrix products; a no-op for fp32 (or fp64 models)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
