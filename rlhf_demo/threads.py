"""How many CPU threads torch uses, set once for a whole server from the cores this process may use.

torch picks its own default from the machine's cores; in a container that can be the host's cores,
not the two this process gets, and every matrix product then runs more threads than cores. The UI's
launch calls :func:`set_torch_threads` once, before any model runs (core modules never set it at import:
a CLI command or a test chooses its own).
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (``cpu.max``,
    e.g. ``200000 100000`` = 2 CPUs), which containers set without narrowing the affinity."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return n


def set_torch_threads(cores: int | None = None) -> tuple[int, int]:
    """``torch.set_num_threads(cores)`` and, if still possible, the inter-op pool too (torch allows that
    only before its first parallel work). ``cores``: default :func:`available_cores`. Returns the
    (intra-op, inter-op) thread counts now in force."""
    import torch

    n = cores or available_cores()
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # parallel work already ran in this process (e.g. a model was loaded first)
        pass
    return torch.get_num_threads(), torch.get_num_interop_threads()
