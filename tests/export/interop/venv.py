"""The isolated virtual environment for the interop round trip: CPU PyTorch, transformers>=5, safetensors.

Never the project's .venv and no system packages: ``python -m venv`` then pip. Reused when a previous
build finished (a marker file written last). Run as a script to build it ahead of the tests:
``python -m tests.export.interop.venv [DIR]``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT = Path(os.environ.get("FTC_INTEROP_VENV", "/tmp/ftc-interop-venv"))
MARKER = ".ftc-interop-complete"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PACKAGES = ["transformers>=5", "safetensors", "numpy"]


class Unreachable(Exception):
    """pip cannot reach an index that offers what the round trip needs (the test skips)."""


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _pip(venv: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(
        [str(python(venv)), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else f"exit {proc.returncode}"


def _versions(venv: Path, name: str, *extra: str) -> list[str]:
    proc = _pip(venv, "index", "versions", name, "--retries", "1", "--timeout", "30", *extra, timeout=300)
    match = re.search(r"Available versions: (.*)", proc.stdout)
    return [v.strip() for v in match.group(1).split(",")] if match else []


def _torch_requirement(venv: Path) -> list[str]:
    """pip arguments that install a CPU build of torch from whatever index is reachable.

    The PyTorch CPU index first (asked alone: ``--isolated`` drops configured extra indexes and
    wheel folders); else a ``+cpu`` build that a configured index or wheel folder offers; else the
    plain index's torch (on Linux that one pulls the CUDA libraries, gigabytes).
    """
    cpu = [v for v in _versions(venv, "torch", "--isolated", "--index-url", CPU_INDEX) if "+cpu" in v]
    if cpu:
        return [f"torch=={cpu[0]}", "--extra-index-url", CPU_INDEX]
    versions = _versions(venv, "torch")
    cpu = [v for v in versions if v.endswith("+cpu")]
    if cpu:
        return [f"torch=={cpu[0]}"]
    if versions:
        return ["torch"]
    raise Unreachable(
        "pip reaches no index offering torch (tried the PyTorch CPU index and the configured ones)"
    )


def ensure(venv: Path = DEFAULT) -> Path:
    """The venv's python, building the venv first unless a complete one is there."""
    if (venv / MARKER).is_file() and python(venv).is_file():
        return python(venv)
    if venv.exists():
        shutil.rmtree(venv)  # an earlier build that did not finish
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    try:
        if not any(v.startswith("5.") for v in _versions(venv, "transformers")):
            raise Unreachable("pip reaches no index offering transformers>=5")
        torch = _torch_requirement(venv)
        for args in (torch, PACKAGES):
            proc = _pip(venv, "install", "-q", "--only-binary", ":all:", *args)
            if proc.returncode != 0:
                raise RuntimeError(f"pip install {' '.join(args)} in {venv} failed: {_last_line(proc)}")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / MARKER).write_text(_pip(venv, "freeze").stdout)
    return python(venv)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    try:
        print(ensure(target))
    except Unreachable as exc:
        print(f"cannot build {target}: {exc}", file=sys.stderr)
        sys.exit(2)
