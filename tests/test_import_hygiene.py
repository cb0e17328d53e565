"""The console side never loads TensorFlow, transformers or Keras (checked in a clean subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

HEAVY = ("tensorflow", "transformers", "keras", "tf_keras", "torch")
CONSOLE_MODULES = [
    "engine.protocol",
    "engine.session",
    "engine.journal",
    "engine.client",
    "engine.launcher",
    "engine.config",
    "tui.cli",
    "tui.app",
    "tui.screens.sessions",
    "tui.screens.monitor",
    "tui.screens.help",
    "tui.screens.dataset",
    "tui.screens.open_file",
    "tui.widgets.curves",
    "tui.widgets.tables",
    "engine.data.cli",
    "engine.jobs",
    "engine.train.config",
    "tui.format",
    "tui.actions",
]


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", CONSOLE_MODULES)
def test_console_module_does_not_import_ml_frameworks(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"{module} pulled in {heavy[:5]}"


def test_cli_parser_and_help_do_not_import_ml_frameworks() -> None:
    loaded = _loaded_after("from tui.cli import build_parser\nbuild_parser().format_help()")
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    assert "textual" not in loaded, "ftc --help should not even load Textual"


def test_ftc_help_is_fast() -> None:
    # Not a benchmark: a guard against an accidental heavy import (TensorFlow alone takes seconds).
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tui", "--help"], cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0 and "fine-tuning console" in out.stdout
    assert elapsed < 2.0, f"ftc --help took {elapsed:.2f}s"
