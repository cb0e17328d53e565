"""A one-paragraph description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def describe() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        mem = "unknown RAM"
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}), {mem}, {system}, Python {sys.version.split()[0]}"


def load_note() -> str:
    """The load averages now, to tell a quiet run from a shared one (2 cores: 1.0 is one busy core)."""
    one, five, fifteen = os.getloadavg()
    return f"load average when written: {one:.2f} (1 min), {five:.2f} (5 min), {fifteen:.2f} (15 min)"
