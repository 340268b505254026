"""Device and dtype resolution: per-device defaults and errors that say what exists."""

from __future__ import annotations

import pytest
import torch

from seal_agent.models.devices import DeviceError, resolve_device, resolve_dtype


def test_cpu_defaults_to_float32_and_names_resolve() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) is torch.float32
    assert resolve_dtype("bf16", cpu) is torch.bfloat16
    assert resolve_dtype("torch.float16", cpu) is torch.float16
    assert resolve_dtype(torch.bfloat16, cpu) is torch.bfloat16
    assert resolve_device("cpu") == cpu


def test_cuda_defaults_to_half_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype(None, torch.device("cuda")) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype(None, torch.device("cuda")) is torch.float16


def test_bad_requests_are_named() -> None:
    with pytest.raises(DeviceError, match="unknown dtype"):
        resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(DeviceError, match="not a floating-point"):
        resolve_dtype(torch.int64, torch.device("cpu"))
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")
