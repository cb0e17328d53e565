"""What a person sees when the pipe closes early or ftc itself has a bug: one line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tui import cli


def _many_sessions(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"20261130-000000-s{i:04d}-abcd"
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text('[job]\nkind = "selftest"\n')
        (folder / "state.json").write_text(json.dumps({"status": "stopped", "job": "selftest", "step": i}))


@pytest.mark.parametrize("argv", [["ls"], ["ls", "--json"]])
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path, argv: list[str]) -> None:
    """``ftc ls | head -c 200``: the listing is far longer than the pipe takes; ftc exits quietly."""
    root = tmp_path / "sessions"
    # ~150 KB of listing: more than a pipe holds (64 KiB on Linux), so ftc is still writing
    # when the reader goes away, however fast or slow the machine.
    _many_sessions(root, 1500)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--sessions-dir", str(root), *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(200)
    proc.stdout.close()  # the reader goes away, as head does
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert len(head) == 200
    assert err == "", err
    assert code == 141


def test_an_unexpected_error_is_one_line_and_a_crash_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_args: object) -> int:
        raise RuntimeError("a bug\nspanning lines")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(cli, "cmd_ls", broken)
    code = cli.main(["--sessions-dir", str(tmp_path / "sessions"), "ls"])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ftc: internal error: a bug spanning lines; this is a bug in ftc")
    logs = list((tmp_path / "state" / "ftc").glob("ftc-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    assert "Traceback" in logs[0].read_text() and "RuntimeError: a bug" in logs[0].read_text()
    assert "Traceback" not in err


def test_the_crash_log_falls_back_to_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state folder should be")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(cli, "cmd_ls", lambda _a: 1 / 0)
    assert cli.main(["ls"]) == 1
    err = capsys.readouterr().err
    assert "internal error: division by zero" in err
    assert list((tmp_path / "tmp").glob("ftc-crash-*.log"))
    assert blocked.read_text() == "a file where the state folder should be"


def test_help_for_the_new_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["resume", "--help"], ["train", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
    out = capsys.readouterr().out
    assert "--checkpoint NAME" in out and "--force" in out and "--allow-failing-checks" in out


@pytest.mark.parametrize(
    ("errno_", "expected"),
    [
        (28, "no space left on device writing /data/x.h5; free space, then try again"),
        (13, "/data/x.h5: permission denied; check the file's owner and permissions, then try again"),
        (2, "/data/x.h5: no such file or folder; check the path, then try again"),
    ],
)
def test_an_os_error_is_one_line_with_the_path_and_the_fix(
    errno_: int,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(_args: object) -> int:
        raise OSError(errno_, os.strerror(errno_), "/data/x.h5")

    monkeypatch.setattr(cli, "cmd_ls", failing)
    assert cli.main(["--sessions-dir", str(tmp_path), "ls"]) == 2
    assert capsys.readouterr().err == f"ftc: {expected}\n"


def test_a_multi_line_error_from_a_library_is_printed_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.errors import ModelError

    def failing(_args: object) -> int:
        raise ModelError("model/: cannot load a tokenizer (line one\n  line two\n\nline three); copy it")

    monkeypatch.setattr(cli, "cmd_ls", failing)
    assert cli.main(["--sessions-dir", str(tmp_path), "ls"]) == 2
    err = capsys.readouterr().err
    assert err == "ftc: model/: cannot load a tokenizer (line one line two line three); copy it\n"


def test_a_tokenizer_that_transformers_cannot_load_is_one_line(tmp_path: Path) -> None:
    """Past the pre-checks (a tokenizer.json that parses) but refused by transformers: one short line."""
    from engine.errors import ModelError
    from engine.model import load_tokenizer

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "Nonsense"}}))
    with pytest.raises(ModelError) as caught:
        load_tokenizer(folder)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 400 and "cannot load a tokenizer" in text and str(folder) in text


@pytest.mark.parametrize(
    ("error", "code", "path"),
    [
        (OSError(28, "No space left on device", "/s/a.h5"), 28, "/s/a.h5"),
        (RuntimeError("HDF5 error back trace ... errno = 28, error message = 'No space left'"), 28, None),
        (RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"), 28, None),
        (
            RuntimeError("failed to write /o/events.out.tfevents: No space left on device"),
            28,
            "/o/events.out.tfevents",
        ),
        (RuntimeError("Disk quota exceeded (os error 122)"), 122, None),
        (OSError("Arrow: 65536 requested and 4096 written"), 28, None),
    ],
)
def test_one_recogniser_knows_every_librarys_full_disk(
    error: BaseException, code: int, path: str | None
) -> None:
    from engine.errors import full_disk

    wrapped = RuntimeError("writing the chunk failed")
    wrapped.__cause__ = error
    for exc in (error, wrapped):
        full = full_disk(exc)
        assert full is not None and full.errno == code and full.filename == path
    assert full_disk(OSError(13, "Permission denied", "/s/x")) is None
    assert full_disk(RuntimeError("out of memory")) is None
