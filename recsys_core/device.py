"""Device and seed resolution, in one place (STYLE.md rule 8)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Devices torch can use on this machine, best first (always ends with ``"cpu"``)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Turn a preference (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``) into a device.

    ``auto`` picks cuda, then mps, then cpu. Asking for a device that is not present raises
    ``ValueError`` naming what is available, rather than silently falling back.
    """
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        return torch.device(available_devices()[0])
    kind = pref.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"device: unknown device {preference!r}; choose one of {DEVICE_CHOICES}")
    if kind != "cpu" and kind not in available_devices():
        raise ValueError(
            f"device: {preference!r} is not available here; available: {available_devices()}"
        )
    return torch.device(pref)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return np.random.default_rng(seed)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype to use on ``device``, or None for full precision.

    bf16 on CUDA devices that support it (no loss scaling needed); nothing elsewhere.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
