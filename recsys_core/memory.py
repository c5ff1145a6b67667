"""Memory the work needs and the machine has, and allocation failures as one clear line.

A model that can foresee its peak implements :class:`EstimatesMemory`; the run function checks
the estimate against what is free before fitting, and :func:`memory_guard` turns an allocation
failure that still happens (a MemoryError, torch's CPU allocator or CUDA out-of-memory errors)
into :class:`~recsys_core.errors.OutOfMemory`: "out of memory while fitting ease on 50,000 items:
needs about 20.1 GB, have 12.0 GB free (cpu); try ...", instead of a raw traceback.

Sizes are in GB (10^9 bytes), the unit system monitors show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from recsys_core.errors import OutOfMemory

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: the worker and task children import this module and
# should not pay torch's start-up for it.

GB = 10**9
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
#: How PyTorch (CUDA and CPU allocators) and numpy word the size of the failed request.
_REQUEST_PATTERNS = (
    re.compile(r"[Tt]ried to allocate ([0-9.]+) (B|KiB|MiB|GiB|TiB)"),
    re.compile(r"you tried to allocate ([0-9]+) bytes()"),
    re.compile(r"Unable to allocate ([0-9.]+) (B|KiB|MiB|GiB|TiB)"),
)
_OOM_WORDS = ("out of memory", "can't allocate memory", "not enough memory", "cannot allocate")


@runtime_checkable
class EstimatesMemory(Protocol):
    """A model that can say, before fitting, how much memory it will take."""

    def peak_bytes(self, n_users: int, n_items: int) -> int:
        """About the most memory (bytes) ``fit`` holds at once on its device."""
        ...

    def state_bytes(self, n_users: int, n_items: int) -> int:
        """About the size (bytes) of the saved model."""
        ...


def format_gb(n_bytes: float) -> str:
    """``12.3 GB`` (one decimal, at least 0.1 GB shown for anything non-zero)."""
    return f"{max(n_bytes / GB, 0.1 if n_bytes > 0 else 0.0):.1f} GB"


def _device_type(device: torch.device | str) -> str:
    return str(getattr(device, "type", device)).split(":")[0]


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory (bytes) on ``device``: CUDA's free memory, the host's available memory, or
    None where it cannot be asked (e.g. MPS)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    return None


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a failed allocation (and not some other RuntimeError)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    if isinstance(error, RuntimeError):
        text = str(error).lower()
        return any(word in text for word in _OOM_WORDS) or "defaultcpuallocator" in text
    return False


def requested_bytes(error: BaseException) -> int | None:
    """The size of the allocation that failed, when the message says it."""
    for pattern in _REQUEST_PATTERNS:
        if match := pattern.search(str(error)):
            return int(float(match.group(1)) * _UNITS.get(match.group(2) or "B", 1))
    return None


def out_of_memory(
    what: str,
    device: torch.device | str,
    *,
    needs: int | None,
    fix: str,
    have: int | None = None,
    note: str = "",
) -> OutOfMemory:
    """The one-line error: "out of memory while WHAT: needs about X GB, have Y GB free (DEV);
    try FIX" (``have`` defaults to what the device has free now)."""
    have = available_bytes(device) if have is None else have
    have_text = f"have {format_gb(have)} free" if have is not None else "free memory unknown"
    need_text = f"needs about {format_gb(needs)}" if needs else "needs more"
    return OutOfMemory(
        f"out of memory while {what}: {need_text}, {have_text} ({_device_type(device)}){note}; "
        f"try {fix.rstrip('.')}"
    )


def check_fits(
    what: str,
    device: torch.device | str,
    needs: int,
    *,
    fix: str,
    have: int | None = None,
    headroom: float = 1.0,
) -> None:
    """Refuse before the work when ``needs`` bytes are more than ``headroom`` times what the
    device has free (``have``, default: asked now)."""
    have = available_bytes(device) if have is None else have
    if have is not None and needs > headroom * have:
        share = f" (more than {headroom:.0%} of it, and the rest of the run needs room)"
        raise out_of_memory(
            what, device, needs=needs, fix=fix, have=have, note=share if needs <= have else ""
        )


@contextmanager
def memory_guard(
    what: str,
    device: torch.device | str,
    *,
    needs: int | None = None,
    fix: str = "a smaller dataset (minimum interactions per user and item), a smaller model "
    "or batch, or a machine with more memory",
) -> Iterator[None]:
    """Turn an allocation failure inside the block into one :class:`OutOfMemory` line.

    ``needs`` is the model's estimate when it has one; otherwise the failed request's size,
    when the message states it (a lower bound). The original error stays chained, so the
    stored traceback still shows where the allocation failed.
    """
    try:
        yield
    except OutOfMemory:
        raise
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        if _device_type(device) == "cuda":
            import torch

            torch.cuda.empty_cache()  # so "have" reports what is free after the failure
        raise out_of_memory(what, device, needs=needs or requested_bytes(error), fix=fix) from error
