"""Session control shared by the sessions, monitor and prediction screens: sent from a worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.widget import Widget

from engine.session import SessionError, resolve
from tui.messages import CommandAnswered

if TYPE_CHECKING:
    from engine.protocol import CommandResult

# Command names as typed (keys, palette, CLI) -> protocol command types.
CONTROL_COMMANDS = {"pause": "pause", "unpause": "unpause", "checkpoint": "checkpoint_now", "stop": "stop"}


def control(root: Path, session: str, command: str, checkpoint: str | None = None) -> tuple[bool, str]:
    """Send a control command (or resume, from a given checkpoint); return (ok, notification text)."""
    try:
        paths = resolve(root, session)
        if command == "resume":
            from engine.launcher import start_engine

            pid = start_engine(paths, resume=True, checkpoint=checkpoint)
            origin = f" from {checkpoint}" if checkpoint else ""
            return True, f"{paths.id}: resumed{origin} (engine pid {pid})"
        # Imported here: the wire protocol is not needed to draw the first frame.
        from engine import client, protocol

        result = client.request(paths, protocol.COMMANDS[CONTROL_COMMANDS[command]]())
    except SessionError as exc:
        return False, str(exc)
    return True, answer_text(paths.id, command, result)


def answer_text(session: str, command: str, result: CommandResult) -> str:
    """The notification for an engine's reply to a control command (the one reader of ``Reply.result``)."""
    note = "" if result.changed else " (already so)"
    return f"{session}: {command} requested at step {result.step}{note}"


def send_control(node: Widget, root: Path, session: str, command: str, checkpoint: str | None = None) -> None:
    """Send a command without blocking the screen; the answer comes back to ``node`` as CommandAnswered."""

    def send() -> None:
        ok, text = control(root, session, command, checkpoint)
        node.post_message(CommandAnswered(session, command, ok, text))

    node.run_worker(send, thread=True, group="control")


EXPORT_FORMAT = "hf"
EXPORT_TIMEOUT_S = 3600.0


def export_folder(root: Path, session: str) -> Path:
    """Where the console exports a session: ``exports/<id>-hf`` beside the sessions folder."""
    return root.parent / "exports" / f"{session}-{EXPORT_FORMAT}"


def export_session(root: Path, session: str) -> tuple[bool, str]:
    """``ftc export SESSION --format hf`` to ``export_folder`` in a child process; (ok, one line).

    A child process: exporting loads TensorFlow, which the console never imports. ``--overwrite``
    replaces only an earlier export (ftc refuses any other folder), so the key can be pressed again.
    """
    import subprocess
    import sys

    try:
        paths = resolve(root, session)
    except SessionError as exc:
        return False, str(exc)
    out = export_folder(root, paths.id)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from engine.errors import os_error_text

        return False, f"{paths.id}: export not started: {os_error_text(exc, 'try again')}"
    argv = [sys.executable, "-m", "tui", "--sessions-dir", str(root), "export", paths.id]
    argv += ["--format", EXPORT_FORMAT, "--out", str(out), "--overwrite"]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{paths.id}: export failed: {' '.join(str(exc).split())}"
    if proc.returncode == 0:
        return True, f"{paths.id}: exported to {out}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if ln.startswith("ftc")), lines[-1] if lines else "")
    return False, reason or f"{paths.id}: export failed (exit {proc.returncode})"


def send_export(node: Widget, root: Path, session: str) -> None:
    """Export without blocking the screen; the result line comes back to ``node`` as CommandAnswered."""
    node.notify(f"{session}: exporting ({EXPORT_FORMAT}) to {export_folder(root, session)}", timeout=4)

    def run() -> None:
        ok, text = export_session(root, session)
        node.post_message(CommandAnswered(session, "export", ok, text))

    node.run_worker(run, thread=True, group="export")


def notify_answer(node: Widget, message: CommandAnswered) -> None:
    """Show an answer as a notification: red when the command failed."""
    node.notify(message.text, severity="information" if message.ok else "error", timeout=6)


TRASH = ".trash"


def trash_session(root: Path, session: str) -> tuple[bool, str]:
    """Move a session that is not running into ``<sessions>/.trash/`` (nothing deleted); (ok, one line)."""
    import os

    from engine import fsio
    from engine.session import LIVE_STATUSES, live_status, read_state

    try:
        paths = resolve(root, session)
        status = live_status(read_state(paths))
    except SessionError as exc:
        return False, str(exc)
    except Exception as exc:  # a damaged state file: the folder can still be set aside
        status = f"damaged ({' '.join(str(exc).split())})"
    if status in LIVE_STATUSES:
        return False, f"{paths.id} is {status}: stop it first (s), then delete it"
    trash = paths.root.parent / TRASH
    target = trash / paths.id
    n = 1
    while target.exists():  # an earlier session of the same id set aside before: keep both
        n += 1
        target = trash / f"{paths.id}.{n}"
    try:
        trash.mkdir(exist_ok=True)
        os.rename(paths.root, target)
        fsio.fsync(trash)
        fsio.fsync(paths.root.parent)
    except OSError as exc:
        from engine.errors import os_error_text

        return False, f"{paths.id}: not moved to {trash}: {os_error_text(exc, 'try again')}"
    return True, f"{paths.id}: moved to {target} (move it back to restore it)"


def send_trash(node: Widget, root: Path, session: str) -> None:
    """Set a session aside without blocking the screen; the result comes back as CommandAnswered."""

    def run() -> None:
        ok, text = trash_session(root, session)
        node.post_message(CommandAnswered(session, "delete", ok, text))

    node.run_worker(run, thread=True, group="trash")
