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


def notify_answer(node: Widget, message: CommandAnswered) -> None:
    """Show an answer as a notification: red when the command failed."""
    node.notify(message.text, severity="information" if message.ok else "error", timeout=6)
