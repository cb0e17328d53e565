"""The console side never loads TensorFlow, transformers or Keras (checked in a clean subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("tensorflow", "transformers", "keras", "tf_keras", "torch")
# Every module of the console package, found on disk so a new screen cannot slip past, plus
# the engine modules the console imports.
TUI_MODULES = sorted(
    "tui." + ".".join(path.relative_to(REPO / "tui").with_suffix("").parts)
    for path in (REPO / "tui").rglob("*.py")
    if path.name not in ("__init__.py", "__main__.py")
)
CONSOLE_MODULES = [
    *TUI_MODULES,
    "engine.protocol",
    "engine.session",
    "engine.journal",
    "engine.client",
    "engine.launcher",
    "engine.config",
    "engine.errors",
    "engine.predict.request",
    "engine.jobs",
    "engine.train.config",
    "engine.predict.progress",
    # Reached from the console; pyproject.toml's import-linter contract ignores their lazy imports of
    # TensorFlow, tf_keras and transformers because importing them loads none of those.
    "engine.model",
    "engine.predict.models",
    "engine.data.scan",
    "engine.data.textchecks",
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


def test_ftc_help_runs_without_the_console_or_engine_packages_loaded() -> None:
    # ``ftc --help`` start time is measured in bench/console_bench.py; here, that it works.
    out = subprocess.run([sys.executable, "-m", "tui", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "fine-tuning console" in out.stdout
    for command in ("demo", "train", "resume", "attach", "ls", "pause", "check", "predict"):
        assert command in out.stdout
