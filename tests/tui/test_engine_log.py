"""The engine log view: XLA's compile-cache notices are folded, everything else is shown as written."""

from __future__ import annotations

from pathlib import Path

from tui.screens.log import engine_log_text

NOTICE = (
    "E0000 00:00:1796047589.437736   10547 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target machine "
    "feature +prefer-no-scatter is not  supported on the host machine. ... could lead to SIGILL"
)


def test_runs_of_compile_cache_notices_fold_into_one_line_each(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    lines = [
        "engine started",
        *[NOTICE] * 300,
        "step 1",
        *[NOTICE] * 2,
        "Traceback (most recent call last):",
        "X",
    ]
    log.write_text("\n".join(lines))
    before = log.read_bytes()
    shown = engine_log_text(log).split("\n")
    assert shown[0] == "engine started" and shown[2] == "step 1"
    assert "300 lines of XLA's compile-cache notices" in shown[1] and "2 lines" in shown[3]
    assert shown[-2:] == ["Traceback (most recent call last):", "X"] and len(shown) == 6
    assert log.read_bytes() == before  # the file itself is left as the engine wrote it


def test_a_log_without_notices_is_shown_unchanged(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text("a\nb SIGILL elsewhere\n")
    assert engine_log_text(log) == "a\nb SIGILL elsewhere\n"
