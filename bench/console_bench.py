"""Console start-up: wall time of ``ftc --help`` and of the TUI's first frame in a real terminal.

Run: ``.venv/bin/python -m bench.console_bench [--runs N]``. The first frame is timed from
launching ``ftc`` inside tmux until its sessions screen is on the terminal (capture-pane
polled every 5 ms), so it includes interpreter start, imports and Textual's first paint.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.machine import describe

REPO = Path(__file__).resolve().parent.parent


def time_help(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tui", "--help"], cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def time_first_frame(runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as root:
        for _ in range(runs):
            name = f"ftc-bench-{uuid.uuid4().hex[:6]}"
            cmd = f"cd {REPO} && {sys.executable} -m tui --sessions-dir {root}"
            start = time.perf_counter()
            subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", cmd], check=True)
            try:
                while True:
                    screen = subprocess.run(
                        ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True
                    ).stdout
                    if "No sessions yet" in screen:
                        times.append(time.perf_counter() - start)
                        break
                    if time.perf_counter() - start > 30:
                        raise RuntimeError("console did not show its first frame within 30 s")
                    time.sleep(0.005)
            finally:
                subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    for label, values in (
        ("ftc --help", time_help(args.runs)),
        ("TUI first frame", time_first_frame(args.runs)),
    ):
        print(
            f"{label:16} median {statistics.median(values) * 1000:7.1f} ms  "
            f"min {min(values) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms  (runs: {len(values)})"
        )


if __name__ == "__main__":
    main()
