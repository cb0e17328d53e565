"""Benchmark (not a test): generate big CSVs, run ``check`` and ``prepare`` on each, print time and peak RSS.

Usage::

    .venv/bin/python bench/prepare_bench.py                      # 1M and 5M rows
    .venv/bin/python bench/prepare_bench.py --rows 200000 --write # and write bench/results/prepare.md

Each run happens in a fresh child process so its peak RSS (``ru_maxrss``) is its own; the
point is that peak memory stays flat when the row count grows tenfold. The generated file
is written label by label (sorted, like the seed story's per-label exports), with 1%
duplicates, a few rows without a label and a few malformed rows, so every path is exercised.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABELS = {"alpha": 0.4, "beta": 0.3, "gamma": 0.2, "delta": 0.1}
BLOCK = 100_000


def generate(path: Path, rows: int, seed: int = 0) -> float:
    """Stream a CSV of ``rows`` data rows to disk, block by block; returns seconds taken."""
    import numpy as np

    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:04d}{'xyz'[i % 3]}" for i in range(5000)], dtype=object)
    row = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "text", "label"])
        for label, share in LABELS.items():
            n = round(rows * share) if label != "delta" else rows - row
            written = 0
            while written < n:
                k = min(BLOCK, n - written)
                lengths = rng.integers(6, 30, size=k)
                words = vocab[rng.integers(0, len(vocab), size=int(lengths.sum()))]
                cuts = np.cumsum(lengths)[:-1]
                texts = [" ".join(ws) for ws in np.split(words, cuts)]
                for i in np.flatnonzero(rng.random(k) < 0.01)[1:]:
                    texts[i] = texts[i - 1]  # duplicates
                for text in texts:
                    row += 1
                    if row % 100_003 == 0:
                        fh.write(f"{row},broken row with,too,many,fields\n")
                    elif row % 100_019 == 0:
                        out.writerow([row, text, ""])
                    else:
                        out.writerow([row, text, label])
                written += k
    return time.monotonic() - t0


def child(mode: str, data: str, out: str | None) -> None:
    """Run one job in this process and print its figures as JSON."""
    import psutil

    from engine.data.prepare import PrepareOptions, prepare
    from engine.data.readers import open_source
    from engine.data.scan import report, scan

    base_rss = psutil.Process().memory_info().rss
    t0 = time.monotonic()
    src = open_source(data)
    if mode == "check":
        doc = report(scan(src, rejects_path=None))
    else:
        assert out is not None
        doc = prepare(src, PrepareOptions(out=Path(out)))["report"]
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "mode": mode,
                "rows": doc["rows"],
                "seconds": round(seconds, 2),
                "rows_per_s": round(doc["rows"]["read"] / max(seconds, 1e-9)),
                "peak_rss_mb": round(peak / 2**20, 1),
                "rss_after_imports_mb": round(base_rss / 2**20, 1),
                "tests": {t["name"]: t["status"] for t in doc["tests"]},
            }
        )
    )


def run_child(mode: str, data: Path, out: Path | None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", mode, str(data)] + ([str(out)] if out else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = f"Python {platform.python_version()}"
    return f"{os.cpu_count()} CPUs ({cpu}), {ram:.1f} GiB RAM, {python}, {platform.system()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workdir", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--write", action="store_true", help="write bench/results/prepare.md")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] if len(args.child) > 2 else None)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    lines = [f"machine: {machine()}", f"command: {' '.join([Path(sys.executable).name, *sys.argv])}", ""]
    lines.append(
        "| rows | file MB | generate s | check s | check rows/s | check peak RSS MB "
        "| prepare s | prepare rows/s | prepare peak RSS MB |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    details = []
    for rows in args.rows:
        data = args.workdir / f"bench-{rows}.csv"
        out = args.workdir / f"prepared-{rows}"
        gen_s = generate(data, rows)
        size_mb = data.stat().st_size / 2**20
        print(f"{rows:,} rows: generated {size_mb:,.1f} MB in {gen_s:.1f} s", flush=True)
        check = run_child("check", data, None)
        print(f"  check:   {json.dumps(check)}", flush=True)
        prep = run_child("prepare", data, out)
        print(f"  prepare: {json.dumps(prep)}", flush=True)
        lines.append(
            f"| {rows:,} | {size_mb:,.1f} | {gen_s:.1f} | {check['seconds']} | {check['rows_per_s']:,} "
            f"| {check['peak_rss_mb']} | {prep['seconds']} | {prep['rows_per_s']:,} | {prep['peak_rss_mb']} |"
        )
        details.append((rows, check, prep))
        if not args.keep:
            data.unlink()
            shutil.rmtree(out, ignore_errors=True)
    lines.append("")
    for rows, check, prep in details:
        lines.append(f"- {rows:,} rows: check {json.dumps(check)}")
        lines.append(f"- {rows:,} rows: prepare {json.dumps(prep)}")
    text = "\n".join(lines)
    print(text)
    if args.write:
        target = REPO / "bench" / "results" / "prepare.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("# prepare + check benchmark\n\n" + text + "\n")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
