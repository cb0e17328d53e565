"""The prediction screen: a prediction session's throughput, ETA, progress, label mix and last rows written.

Like the monitor it replays the session's journal, then follows live events. It never
imports TensorFlow: everything it shows comes from ``progress_reported`` events.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, ProgressBar, RichLog, Static

from engine.predict.progress import STAGE
from engine.protocol import Envelope, ProgressReported
from engine.session import LIVE_STATUSES
from tui import keymap
from tui.feed import SessionFeed, log_line, notice_line
from tui.format import duration
from tui.status import status_text
from tui.widgets.confirm import ask
from tui.widgets.footer import KeyFooter

BAR_WIDTH = 10
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

    KEYMAP = keymap.PREDICT
    BINDINGS = keymap.bindings(KEYMAP)

    def __init__(self, root: Path, session_id: str) -> None:
        super().__init__()
        self.feed = SessionFeed(root, session_id)
        self.session_id = self.feed.session_id
        self.progress: ProgressReported | None = None  # the latest report: everything the panels show
        # Each report restates the whole picture: when they come faster than we draw, the newest will do.
        self.feed.handle(ProgressReported, self.progress_reported, latest_only=True)
        self.feed.handle_every(self.log_event)
        self.feed.on_notice(self.log_notice)
        self.feed.on_change(self.update_status_line)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"predict  {self.session_id}", id="predict-title")
        yield Static("", id="predict-status")
        yield ProgressBar(id="predict-progress", show_eta=False)
        with Horizontal(id="predict-panels"):
            yield Static(label_bars({}), id="predict-labels")
            yield DataTable(id="predict-rows", cursor_type="none", zebra_stripes=True)
        yield RichLog(id="predict-log", max_lines=LOG_LINES, wrap=False, markup=False)
        yield self.feed
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self.query_one("#predict-labels", Static).border_title = "labels"
        rows = self.query_one("#predict-rows", DataTable)
        rows.border_title = "last rows written"
        rows.add_columns("row", "label", "score", "text")
        self.feed.start()

    # ---------------------------------------------------------------- events in

    def log_notice(self, text: str) -> None:
        self.query_one("#predict-log", RichLog).write(notice_line(text))

    def log_event(self, env: Envelope) -> None:
        if isinstance(env.body, ProgressReported) and env.body.stage == STAGE:
            return  # the panels show it; the log keeps the rarer events
        self.query_one("#predict-log", RichLog).write(log_line(env))

    def progress_reported(self, report: ProgressReported, _env: Envelope) -> None:
        if report.stage != STAGE:
            return
        self.progress = report
        detail = report.detail
        self.query_one("#predict-labels", Static).update(label_bars(detail.label_counts))
        if detail.last_rows:
            table = self.query_one("#predict-rows", DataTable)
            table.clear()
            for r in detail.last_rows:
                score = "-" if r.score is None else f"{r.score:.3f}"
                # Cells are Text, not markup: a flag in brackets must show as written.
                label = Text(r.label) if r.label else Text(f"[{r.flag or ''}]", style="yellow")
                table.add_row(f"{r.row:,}", label, score, Text(r.text))
        total = report.total or detail.estimated_total
        if total:
            self.query_one("#predict-progress", ProgressBar).update(total=total, progress=report.done)

    # ---------------------------------------------------------------- display

    def update_status_line(self) -> None:
        p, status = self.progress, self.feed.status
        parts = [status_text(status, "bold")]
        if p:
            d = p.detail
            total = p.total or d.estimated_total
            approx = "~" if p.total is None and total else ""
            parts.append(Text(f"  {p.done:,}" + (f"/{approx}{total:,}" if total else "") + " rows"))
            if p.rate:
                parts.append(Text(f"  {p.rate:,.0f} rows/s"))
            if d.tokens_per_s:
                parts.append(Text(f"  {d.tokens_per_s:,.0f} tok/s"))
            if p.eta_s is not None and status == "running":
                parts.append(Text(f"  ETA {duration(p.eta_s)}"))
            if d.padding is not None:
                parts.append(Text(f"  pad {d.padding:.0%}", style="dim"))
            flagged = sum(d.flag_counts.values())
            if flagged:
                parts.append(Text(f"  flagged {flagged:,}", style="yellow"))
        self.query_one("#predict-status", Static).update(Text.assemble(*parts))

    # ---------------------------------------------------------------- controls

    def action_back(self) -> None:
        """Back to the screen below; where there is none (``ftc predict``'s own app), quit."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()

    def action_control(self, command: str) -> None:
        if command == "stop" and self.feed.status in LIVE_STATUSES:
            ask(self, f"Stop session {self.session_id}?", lambda: self.feed.control(command))
            return
        self.feed.control(command)


class PredictApp(App[None]):
    """The prediction screen on its own, for ``ftc predict`` on a terminal."""

    TITLE = "ftc predict"
    KEYMAP = keymap.PREDICT_APP  # the footer's app-wide keys (this window has no help screen)
    BINDINGS = keymap.bindings(keymap.PREDICT_APP)

    def __init__(self, root: Path, session_id: str) -> None:
        super().__init__()
        self._root, self._session = root, session_id

    def get_default_screen(self) -> Screen[None]:
        # The only screen, not one pushed over a blank default that escape would uncover.
        return PredictScreen(self._root, self._session)


def run_predict_app(root: Path, session_id: str) -> None:
    from tui.hangup import run_app

    run_app(PredictApp(root, session_id))  # ends when its terminal hangs up; the job runs on
