"""Where a model runs and in which precision, decided once and explained on failure.

Half precision is the default on CUDA because both the 7B VQA model and OWLv2 are
memory-bound there (bf16 where the card supports it: same range as fp32, so no
overflow in attention logits; fp16 on older cards). On the CPU the default is fp32:
CPU kernels for bf16/fp16 are slower than fp32 on most hardware, and tests compare
numbers. Asking for bf16 on the CPU is allowed (torch supports it); asking for a
device that is not there is an error that says what is there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seal_agent.errors import SealError

if TYPE_CHECKING:
    import torch


class DeviceError(SealError, ValueError):
    """A requested device or dtype is unknown or not available on this machine."""


_DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA, then Apple MPS, then the CPU; a named device must exist."""
    import torch

    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}: {exc}") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available here")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {device!r} requested but MPS is not available here")
    elif resolved.type != "cpu":
        raise DeviceError(f"unsupported device type {resolved.type!r} (use cuda, mps or cpu)")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` gives bf16 (or fp16) on CUDA, fp16 on MPS, fp32 on the CPU."""
    import torch

    if dtype is None:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise DeviceError(f"dtype {dtype} is not a floating-point type")
        return dtype
    name = _DTYPE_NAMES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise DeviceError(
            f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16 (or None for auto)"
        )
    return getattr(torch, name)


def keeps_in_host_memory(offload: bool | None, *devices: torch.device) -> bool:
    """A cache's choice for an entry made on ``devices``: ``offload`` where set, else
    whether any of them is an accelerator (a GPU holds the models and the work in
    flight; the host keeps what is only reused)."""
    if offload is not None:
        return offload
    return any(device.type != "cpu" for device in devices)


def dtype_name(dtype: torch.dtype) -> str:
    """'bfloat16' for ``torch.bfloat16`` (for configs and reports)."""
    return str(dtype).removeprefix("torch.")
