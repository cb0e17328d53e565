"""Session actions shared by the sessions and monitor screens (run in worker threads)."""

from __future__ import annotations

from pathlib import Path

from engine.session import SessionError, SessionPaths, resolve

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
    note = "" if result.get("changed") else " (already so)"
    return True, f"{paths.id}: {command} requested at step {result.get('step', 0)}{note}"


def session_paths(root: Path, session: str) -> SessionPaths:
    return resolve(root, session)
