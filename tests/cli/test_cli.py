"""The ftc command line as a user runs it: real subprocesses, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from engine.session import engine_lock_held, pid_alive, read_state, resolve
from tests.conftest import REPO, wait_for


def ftc(*args: str, root: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "--sessions-dir", str(root), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _config(tmp_path: Path, steps: int = 5, step_s: float = 0.01, **extra: object) -> Path:
    path = tmp_path / "run.toml"
    lines = ['[job]\nkind = "selftest"\n', f"[selftest]\nsteps = {steps}\nstep_s = {step_s}\n"]
    lines += [f"{k} = {v}\n" for k, v in extra.items()]
    path.write_text("".join(lines))
    return path


def test_train_without_tty_prints_plain_progress_lines(tmp_path: Path, sessions_root: Path) -> None:
    out = ftc("train", str(_config(tmp_path, steps=12)), "--name", "plain", root=sessions_root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    session_id = lines[0]
    assert "plain" in session_id and resolve(sessions_root, session_id)
    assert any("step 12/12" in ln for ln in lines)
    assert lines[-1].endswith("engine stopped: finished (job finished)")
    assert "\r" not in out.stdout and "\x1b[" not in out.stdout, "no progress-bar spam without a TTY"


def test_detach_ls_control_and_attach(tmp_path: Path, sessions_root: Path) -> None:
    out = ftc("train", str(_config(tmp_path, steps=100000, step_s=0.02)), "--detach", root=sessions_root)
    assert out.returncode == 0, out.stderr
    session_id = out.stdout.strip()
    paths = resolve(sessions_root, session_id)
    listing = json.loads(ftc("ls", "--json", root=sessions_root).stdout)
    assert [(s["id"], s["status"]) for s in listing] == [(session_id, "running")]
    table = ftc("ls", root=sessions_root).stdout
    assert session_id in table and "running" in table
    out = ftc("pause", session_id[-6:], root=sessions_root)  # a unique suffix is enough
    assert out.returncode == 0 and "pause requested" in out.stdout
    wait_for(lambda: read_state(paths)["status"] == "paused", what="paused")
    assert "already so" in ftc("pause", session_id, root=sessions_root).stdout
    assert ftc("checkpoint", session_id, root=sessions_root).returncode == 0
    assert ftc("unpause", session_id, root=sessions_root).returncode == 0
    assert ftc("stop", session_id, root=sessions_root).returncode == 0
    wait_for(lambda: read_state(paths)["status"] == "stopped", what="stopped")
    attached = ftc("attach", session_id, root=sessions_root)
    assert attached.returncode == 0
    history = attached.stdout
    for fragment in (
        "engine started",
        "paused at step",
        "unpaused at step",
        "checkpoint at step",
        "job stopped",
    ):
        assert fragment in history, fragment
    seqs = [int(ln.split("]")[0][1:]) for ln in history.splitlines() if ln.startswith("[")]
    assert seqs == list(range(1, len(seqs) + 1))


def test_errors_are_one_sentence_and_exit_2(tmp_path: Path, sessions_root: Path) -> None:
    cases = [
        (("pause", "nosuch"), "no session 'nosuch'"),
        (("attach", "nosuch"), "no session 'nosuch'"),
        (("train", str(tmp_path / "missing.toml")), "missing.toml: no such file"),
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("[job\nkind=")
    cases.append((("train", str(bad)), "bad.toml: not valid TOML"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[job]\nkind = "teleport"\n')
    cases.append((("train", str(unknown)), "unknown job kind 'teleport'"))
    for args, fragment in cases:
        out = ftc(*args, root=sessions_root)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert fragment in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_control_of_a_dead_session_says_how_to_resume(tmp_path: Path, sessions_root: Path) -> None:
    out = ftc("train", str(_config(tmp_path, steps=100000)), "--detach", root=sessions_root)
    session_id = out.stdout.strip()
    pid = read_state(resolve(sessions_root, session_id))["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="engine death")
    assert json.loads(ftc("ls", "--json", root=sessions_root).stdout)[0]["status"] == "crashed"
    attached = ftc("attach", session_id, root=sessions_root)
    assert attached.returncode == 1, "following a crashed session ends in failure"
    assert "[1] engine started" in attached.stdout
    assert attached.stdout.rstrip().endswith(
        f"engine is gone (status: crashed); 'ftc resume {session_id}' continues it"
    )
    out = ftc("stop", session_id, root=sessions_root)
    assert out.returncode == 2
    assert f"status: crashed); resume it with 'ftc resume {session_id}'" in out.stderr
    out = ftc("resume", session_id, "--detach", root=sessions_root)
    assert out.returncode == 0, out.stderr
    assert json.loads(ftc("ls", "--json", root=sessions_root).stdout)[0]["status"] == "running"


def test_a_bad_training_config_is_refused_before_any_engine_starts(
    tmp_path: Path, sessions_root: Path
) -> None:
    config = tmp_path / "train.toml"
    config.write_text('[model]\nsource = "x"\n[train]\nlearning_rate = -1\n')
    out = ftc("train", str(config), root=sessions_root)
    assert out.returncode == 2
    assert "[train] learning_rate" in out.stderr and "Traceback" not in out.stderr
    assert not sessions_root.exists() or not any(sessions_root.iterdir()), "no session is left behind"


def test_train_keeps_the_permissions_of_an_existing_sessions_folder(
    tmp_path: Path, sessions_root: Path
) -> None:
    sessions_root.mkdir()
    os.chmod(sessions_root, 0o755)  # a shared folder the user made readable on purpose
    out = ftc("train", str(_config(tmp_path)), "--detach", root=sessions_root)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(sessions_root.stat().st_mode) == 0o755, "ftc must not tighten the user's folder"
    session = resolve(sessions_root, out.stdout.strip()).root
    assert stat.S_IMODE(session.stat().st_mode) == 0o700, "its own session folder is private"
    fresh = tmp_path / "new" / "sessions"
    out = ftc("train", str(_config(tmp_path)), "--detach", root=fresh)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700, "a sessions folder ftc creates is private"


def test_resume_of_a_finished_session_changes_nothing_unless_forced(
    tmp_path: Path, sessions_root: Path
) -> None:
    out = ftc("train", str(_config(tmp_path, steps=5)), root=sessions_root)
    assert out.returncode == 0, out.stderr
    paths = resolve(sessions_root, out.stdout.splitlines()[0])
    wait_for(lambda: not engine_lock_held(paths), what="the engine's exit")
    before = {p: p.read_bytes() for p in paths.root.rglob("*") if p.is_file()}
    out = ftc("resume", paths.id, root=sessions_root)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"ftc: session {paths.id} finished at step 5; nothing to resume "
        "(--force to run it again from its last checkpoint)"
    ), out.stderr
    after = {p: p.read_bytes() for p in paths.root.rglob("*") if p.is_file()}
    assert after == before, "a refused resume writes nothing (state.json and the journal byte-identical)"
    out = ftc("resume", paths.id, "--force", root=sessions_root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("engine stopped: finished (job finished)")
    assert read_state(paths)["status"] == "finished" and read_state(paths)["step"] == 5
