"""The prediction screen: a prediction session's throughput, ETA, progress, label mix and last rows written.

Like the monitor it replays the session's journal, then follows live events. It never
imports TensorFlow: everything it shows comes from ``progress_reported`` events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, RichLog, Static
from textual.worker import get_current_worker

from engine.client import EventFollower
from engine.predict.progress import STAGE
from engine.session import live_status, read_state, resolve
from tui import actions
from tui.format import duration, event_line
from tui.messages import CommandAnswered, EventsReceived
from tui.screens.sessions import STATUS_STYLE

BAR_WIDTH = 10
PREDICT_JOB = "predict"  # the [job] kind of sessions this screen shows
LOG_LINES = 500


def label_bars(counts: dict[str, int], width: int = BAR_WIDTH) -> Text:
    """One line per label, most frequent first: name, bar, share and count."""
    total = sum(counts.values())
    if not total:
        return Text("no predictions yet", style="dim")
    name_w = max(len(k) for k in counts)
    out = Text()
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        share = n / total
        filled = round(share * width)
        out.append(f"{name:<{name_w}} ")
        out.append("█" * filled, style="green")
        out.append("·" * (width - filled), style="dim")
        out.append(f" {share:6.1%} {n:>9,}\n")
    return out


class PredictScreen(Screen[None]):
    """Live view of one prediction session."""

    DEFAULT_CSS = """
    PredictScreen #predict-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
    PredictScreen #predict-status { height: 1; padding: 0 1; }
    PredictScreen #predict-progress { height: 1; padding: 0 1; }
    PredictScreen #predict-panels { height: 1fr; min-height: 6; }
    PredictScreen #predict-labels { width: 36; padding: 0 1; border: round $primary; }
    PredictScreen #predict-rows { width: 1fr; border: round $primary; }
    PredictScreen #predict-log { height: 5; }
    """

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("p", "control('pause')", "Pause"),
        Binding("u", "control('unpause')", "Unpause"),
        Binding("s", "control('stop')", "Stop"),
        Binding("r", "control('resume')", "Resume"),
    ]

    def __init__(self, root: Path, session_id: str) -> None:
        super().__init__()
        self.root = root
        self.paths = resolve(root, session_id)
        self.session_id = self.paths.id
        self.seen_seq = 0
        self.progress: dict[str, Any] = {}
        self.status = "?"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"predict  {self.session_id}", id="predict-title")
        yield Static("", id="predict-status")
        yield ProgressBar(id="predict-progress", show_eta=False)
        with Horizontal(id="predict-panels"):
            yield Static(label_bars({}), id="predict-labels")
            yield DataTable(id="predict-rows", cursor_type="none", zebra_stripes=True)
        yield RichLog(id="predict-log", max_lines=LOG_LINES, wrap=False, markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#predict-labels", Static).border_title = "labels"
        rows = self.query_one("#predict-rows", DataTable)
        rows.border_title = "last rows written"
        rows.add_columns("row", "label", "score", "text")
        self.follow()
        self.refresh_status()
        self.set_interval(1.0, self.refresh_status)

    # ---------------------------------------------------------------- events in

    @work(thread=True, exclusive=True, group="follow")
    def follow(self) -> None:
        worker = get_current_worker()
        follower = EventFollower(self.paths)
        try:
            while not worker.is_cancelled:
                events = follower.poll(timeout=0.2)
                if events:
                    self.post_message(EventsReceived(events))
        finally:
            follower.close()

    @on(EventsReceived)
    def events_received(self, message: EventsReceived) -> None:
        log = self.query_one("#predict-log", RichLog)
        for env in message.events:
            if env.seq is not None and env.seq <= self.seen_seq:
                continue
            self.seen_seq = env.seq or self.seen_seq
            body = env.body.model_dump()
            if env.type == "progress_reported" and body.get("stage") == STAGE:
                self.show_progress(body)
                continue  # the panels show it; the log keeps the rarer events
            style = "red" if env.type == "job_failed" else ""
            log.write(Text(f"{env.seq:>6} {event_line(env.type, body)}", style=style))

    def show_progress(self, body: dict[str, Any]) -> None:
        self.progress = body
        detail = body.get("detail") or {}
        self.query_one("#predict-labels", Static).update(label_bars(detail.get("label_counts") or {}))
        last = detail.get("last_rows")
        if last:
            table = self.query_one("#predict-rows", DataTable)
            table.clear()
            for r in last:
                score = "-" if r.get("score") is None else f"{r['score']:.3f}"
                # Cells are Text, not markup: a flag in brackets must show as written.
                label = Text(r["label"]) if r.get("label") else Text(f"[{r.get('flag')}]", style="yellow")
                table.add_row(f"{r['row']:,}", label, score, Text(r.get("text", "")))
        total = body.get("total") or detail.get("estimated_total")
        if total:
            self.query_one("#predict-progress", ProgressBar).update(total=total, progress=body["done"])
        self.update_status_line()

    # ---------------------------------------------------------------- display

    @work(thread=True, exclusive=True, group="status")
    def refresh_status(self) -> None:
        try:
            status = live_status(read_state(self.paths))
        except Exception as exc:  # a damaged state file is shown, not fatal
            status = f"damaged ({exc})"
        self.app.call_from_thread(self._set_status, status)

    def _set_status(self, status: str) -> None:
        self.status = status
        self.update_status_line()

    def update_status_line(self) -> None:
        b = self.progress
        d = b.get("detail") or {}
        parts = [Text(self.status, style=STATUS_STYLE.get(self.status, "bold"))]
        if b:
            total = b.get("total") or d.get("estimated_total")
            approx = "~" if b.get("total") is None and total else ""
            parts.append(Text(f"  {b['done']:,}" + (f"/{approx}{total:,}" if total else "") + " rows"))
            if b.get("rate"):
                parts.append(Text(f"  {b['rate']:,.0f} rows/s"))
            if d.get("tokens_per_s"):
                parts.append(Text(f"  {d['tokens_per_s']:,.0f} tok/s"))
            if b.get("eta_s") is not None and self.status == "running":
                parts.append(Text(f"  ETA {duration(b['eta_s'])}"))
            if d.get("padding") is not None:
                parts.append(Text(f"  pad {d['padding']:.0%}", style="dim"))
            flags = d.get("flag_counts") or {}
            if flags:
                parts.append(Text(f"  flagged {sum(flags.values()):,}", style="yellow"))
        self.query_one("#predict-status", Static).update(Text.assemble(*parts))

    # ---------------------------------------------------------------- controls

    def action_back(self) -> None:
        """Back to the screen below; where there is none (``ftc predict``'s own app), quit."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()

    def action_control(self, command: str) -> None:
        self.send_control(command)

    @work(thread=True, group="control")
    def send_control(self, command: str) -> None:
        ok, text = actions.control(self.root, self.session_id, command)
        self.post_message(CommandAnswered(self.session_id, command, ok, text))

    @on(CommandAnswered)
    def command_answered(self, message: CommandAnswered) -> None:
        self.notify(message.text, severity="information" if message.ok else "error", timeout=6)
        self.refresh_status()


class PredictApp(App[None]):
    """The prediction screen on its own, for ``ftc predict`` on a terminal."""

    TITLE = "ftc predict"
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, root: Path, session_id: str) -> None:
        super().__init__()
        self._root, self._session = root, session_id

    def get_default_screen(self) -> Screen[None]:
        # The only screen, not one pushed over a blank default that escape would uncover.
        return PredictScreen(self._root, self._session)


def is_predict_session(root: Path, session_id: str) -> bool:
    """Whether a session's job is a prediction (state.json says, else its config.toml)."""
    try:
        paths = resolve(root, session_id)
        job = read_state(paths).get("job")
        if job is None and paths.config.is_file():
            from engine.config import job_kind, load_toml

            job = job_kind(load_toml(paths.config))
    except Exception:  # a damaged or vanished session opens on the monitor, which explains it
        return False
    return job == PREDICT_JOB


def run_predict_app(root: Path, session_id: str) -> None:
    PredictApp(root, session_id).run()
