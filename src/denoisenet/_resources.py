"""Memory that a network needs against memory that a device has.

The estimators refuse a network that cannot fit before they allocate it. An
allocation of terabytes is not always an error that Python sees: on Linux
the operating system may kill the whole process instead, taking the user's
session with it. The check is deliberately simple: the float32 copies of
the parameters that a step holds at once, against the memory free now.
"""

import os
from pathlib import Path

import torch

__all__ = [
    "INFERENCE_COPIES",
    "TRAINING_COPIES",
    "available_memory",
    "check_network_fits",
    "format_bytes",
]

# Copies of every parameter that training holds at once: the weights, their
# gradients, Adam's two moments, and the weights and moments that the loop
# keeps to undo an interrupted epoch.
TRAINING_COPIES = 7
# Inference and loading hold the weights once.
INFERENCE_COPIES = 1
_FLOAT32_BYTES = 4
# torch indexes tensors with int64: nothing larger can exist on any device.
_LARGEST = 2**63 - 1


def format_bytes(n):
    """``n`` bytes in binary units: ``'1.5 GiB'``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            break
        n /= 1024
    if unit == "bytes":
        return f"{int(n)} bytes"
    return f"{n:.3g} {unit}"


def _meminfo_available():
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_available():
    """What a container's memory limit (cgroup v2) leaves, or None."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def available_memory(device):
    """Bytes that can still be allocated on ``device`` now, or None if unknown.

    The host's available physical memory (``MemAvailable``, within a
    container's limit) for the CPU and for MPS, which shares it; the free
    memory that ``torch.cuda.mem_get_info`` reports for a CUDA device.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    known = [m for m in (_meminfo_available(), _cgroup_available()) if m is not None]
    return min(known) if known else None


def check_network_fits(n_parameters, device, *, copies, subject, advice):
    """Raise ValueError when ``copies`` of ``n_parameters`` floats cannot fit.

    Parameters
    ----------
    n_parameters : int
        Number of parameters of the network (a Python int of any size).
    device : torch.device
        Where the network would live.
    copies : int
        float32 copies of the parameters held at once.
    subject : str
        What needs the memory, the start of the message.
    advice : str
        What to do instead, the end of the message.
    """
    needed = n_parameters * copies * _FLOAT32_BYTES
    available = available_memory(device)
    limit = _LARGEST if available is None else min(available, _LARGEST)
    if needed <= limit:
        return
    where = "the largest tensor torch can index"
    if available is not None and available < _LARGEST:
        where = f"the {format_bytes(available)} of memory available on {device}"
    raise ValueError(
        f"{subject} has {n_parameters:,} parameters, which need "
        f"{format_bytes(needed)} ({copies} float32 "
        f"cop{'y' if copies == 1 else 'ies'} of each), more than {where}. {advice}"
    )
