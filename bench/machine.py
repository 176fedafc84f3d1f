"""The machine a benchmark ran on, as every bench names it beside its figures (this project's CPU changes
between sessions, so a figure without its CPU means little)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what decides bf16 and its speed here


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_name() -> str:
    return cpuinfo().get("model name") or platform.processor() or "unknown CPU"


def cpu_summary() -> str:
    """The CPU's name, its cores and which of the flags that matter here it has."""
    have = set(cpuinfo().get("flags", "").split())
    flags = " ".join(f for f in FLAGS if f in have)
    return f"{cpu_name()} ({os.cpu_count()} cores; {flags or 'no AVX2'})"
