"""The machine a benchmark ran on, printed with its figures (CPUs of the same kind differ: one has
AMX, another not, and their times differ by 1.5× or more)."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if model and flags:
                    break
    except OSError:
        pass
    extras = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return f"{model} · {os.cpu_count()} CPUs · {', '.join(extras) or 'no AVX2/512/AMX flags'}"
