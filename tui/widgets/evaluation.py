"""The monitor's Evaluation tab: every evaluation over time (the best marked), the selected one's
metrics and confusion matrix, and accuracy, macro F1 and loss against step.

The table's cursor (up and down) chooses the evaluation the metrics and the matrix show; enter on a
cell of the matrix posts ``ErrorsRequested`` for that cell (a label cell, or its row's ``n``: the
whole row), which the App turns into the error-analysis view. Evaluations from an ftc before 1.3
have no matrix and before 1.4 no epoch: those are said to be "not recorded", never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from tui.live import on_stack
from tui.messages import ErrorsRequested
from tui.widgets.curves import legend, step_ticks, thin, value_ticks

if TYPE_CHECKING:
    from engine.protocol import EvaluationEnded

# Headline metrics in the order shown, with the names a reader knows them by; others follow as named.
METRIC_LABELS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_f1": "macro F1",
    "roc_auc": "ROC-AUC",
}
TABLE_METRICS = ("accuracy", "macro_f1", "loss")  # the history table's columns (and the best metric's)
BEST_MARK = "★"
NOT_RECORDED = "not recorded"
SPLIT_NAMES = {"validation": "val"}  # short in the table, where every column counts at 80x24
# Below this many rows the tab shows only the table and the selected evaluation's metrics; the plot
# and the confusion matrix need the monitor's zoom (z) there.
COMPACT_BELOW_ROWS = 15
TITLES_FROM_ROWS = 8  # with fewer, the tables have no title rows (the six metrics need six rows)
HIDDEN_REFILL_S = 1.0  # a hidden evaluation table is refilled at most this often while rows arrive


@dataclass(frozen=True)
class BestRule:
    """Which evaluation is best: the run's early-stopping metric and whether higher is better."""

    metric: str = "macro_f1"
    maximize: bool = True

    def text(self) -> str:
        return f"{METRIC_LABELS.get(self.metric, self.metric)} {'max' if self.maximize else 'min'}"


def best_rule(config: Path) -> BestRule:
    """The session's [train.early_stopping] metric and mode, read as the engine reads them.

    Unset, or a config that cannot be read: macro F1, higher is better (the engine's default), so
    the tab still shows the evaluations.
    """
    try:
        from engine.config import load_toml
        from engine.train.config import EarlyStopping

        section = (load_toml(config).get("train") or {}).get("early_stopping") or {}
        early = EarlyStopping.model_validate(section)
    except Exception:
        return BestRule()
    return BestRule(early.metric, early.maximize)


def best_index(evaluations: list[EvaluationEnded], rule: BestRule) -> int | None:
    """The best validation evaluation's index by ``rule`` (the first of equals, as the engine keeps)."""
    best: int | None = None
    for i, evaluation in enumerate(evaluations):
        value = evaluation.metrics.get(rule.metric)
        if evaluation.split != "validation" or value is None:
            continue
        if best is None:
            best = i
            continue
        held = evaluations[best].metrics[rule.metric]
        if (value > held) if rule.maximize else (value < held):
            best = i
    return best


def row_shares(confusion: list[list[int]]) -> list[list[float | None]]:
    """Each count as a share of its row (its true label's examples); None for a row with no examples."""
    out: list[list[float | None]] = []
    for row in confusion:
        total = sum(row)
        out.append([count / total if total else None for count in row])
    return out


def share_text(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class EvaluationTable(DataTable[str | Text]):
    """One row per evaluation, oldest first: step, epoch, split and the headline metrics; best starred."""

    def __init__(self, rule: BestRule, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.rule = rule
        self.metrics = TABLE_METRICS + (() if rule.metric in TABLE_METRICS else (rule.metric,))

    def on_mount(self) -> None:
        self.add_columns(
            BEST_MARK, "step", "epoch", "split", *(METRIC_LABELS.get(m, m) for m in self.metrics)
        )

    def fill(self, evaluations: list[EvaluationEnded], best: int | None) -> None:
        """Redraw every row; the cursor stays on its row, or follows a new evaluation from the last row."""
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        cursor = self.cursor_row
        self.clear()
        for i, evaluation in enumerate(evaluations):
            is_best = i == best
            cells: list[str | Text] = [
                Text(BEST_MARK, style="bold yellow") if is_best else "",
                str(evaluation.step),
                "-" if evaluation.epoch is None else f"{evaluation.epoch:.2f}",  # the title says why
                SPLIT_NAMES.get(evaluation.split, evaluation.split),
            ]
            for metric in self.metrics:
                text = _figure(evaluation.metrics.get(metric))
                cells.append(
                    Text(text, style="bold yellow") if is_best and metric == self.rule.metric else text
                )
            self.add_row(*cells, key=str(i))
        if self.row_count:
            self.move_cursor(row=self.row_count - 1 if follow else min(cursor, self.row_count - 1))


class MetricsList(DataTable[str | Text]):
    """The selected evaluation's every metric, one a row (metric | value), so all fit 80 columns."""

    can_focus = False  # nothing to choose in it: tab goes from the history to the matrix

    def __init__(self, **kwargs: Any) -> None:
        # No header row: "loss 0.4120" reads by itself, and the six headline metrics fit 80x24.
        super().__init__(cursor_type="none", show_header=False, **kwargs)

    def on_mount(self) -> None:
        self.add_columns("metric", "value")

    def fill(self, evaluation: EvaluationEnded) -> None:
        self.clear()
        metrics = evaluation.metrics
        names = [k for k in METRIC_LABELS if k in metrics] + [k for k in metrics if k not in METRIC_LABELS]
        for name in names:
            self.add_row(METRIC_LABELS.get(name, name), f"{metrics[name]:.4f}", key=name)


class ConfusionMatrix(DataTable[str | Text]):
    """[true][predicted] counts, each with its share of the row; then the row's n and its class's F1.

    The label column and the n column stand for the whole row (predicted: any).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="cell", **kwargs)
        self.labels: list[str] = []
        self.evaluation: EvaluationEnded | None = None

    def fill(self, evaluation: EvaluationEnded) -> None:
        self.evaluation = evaluation
        confusion = evaluation.confusion
        labels = list(evaluation.per_class)
        if len(labels) != len(confusion):  # per_class is the label order; without it, say the index
            labels = [str(i) for i in range(len(confusion))]
        self.labels = labels
        cursor = self.cursor_coordinate
        self.clear(columns=True)
        self.add_column("true\\pred", key="true")
        for i, label in enumerate(labels):
            self.add_column(label, key=f"p{i}")
        self.add_column("n", key="n")
        self.add_column("F1", key="f1")
        width = max((len(str(c)) for row in confusion for c in row), default=1)
        for i, (row, shares) in enumerate(zip(confusion, row_shares(confusion), strict=True)):
            cells: list[str | Text] = [Text(labels[i], style="bold")]
            for j, (count, share) in enumerate(zip(row, shares, strict=True)):
                text = f"{count:>{width}} {share_text(share):>4}"
                if i == j:
                    style = "bold green"
                elif count == 0:
                    style = "dim"
                else:
                    style = "bold red" if share is not None and share >= 0.1 else "yellow"
                cells.append(Text(text, style=style))
            f1 = evaluation.per_class.get(labels[i], {}).get("f1")
            cells += [str(sum(row)), _figure(f1)]
            self.add_row(*cells, key=labels[i])
        if self.row_count:
            self.cursor_coordinate = cursor

    def cell_labels(self, row: int, column: int) -> tuple[str | None, str | None]:
        """(true, predicted) of a cell; predicted None for the label and the figures columns."""
        true = self.labels[row] if 0 <= row < len(self.labels) else None
        predicted = self.labels[column - 1] if 1 <= column <= len(self.labels) else None
        return true, predicted


class MetricPlot(PlotextPlot):
    """Accuracy and macro F1 of each split's evaluations (left axis), and loss (right axis): training
    loss at each step and each evaluation's loss; the selected evaluation's step as a line."""

    DEFAULT_CSS = """
    MetricPlot {
        border-top: solid $primary 50%;
        border-title-align: left;
        border-title-color: $foreground;
    }
    """
    # (metric, legend name, Rich colour, plotext colour) of the validation evaluations, on the left axis
    SERIES = (
        ("accuracy", "acc", "green", "green"),
        ("macro_f1", "F1", "cyan", "cyan"),
    )
    # loss, on the right axis: each step's, and each validation's
    TRAIN_LOSS = ("train", "grey50", "gray")
    VAL_LOSS = ("val", "dark_orange", "orange")

    def on_mount(self) -> None:
        self.border_title = legend("metrics", [])

    def draw(
        self,
        evaluations: list[EvaluationEnded],
        selected: EvaluationEnded | None,
        train: tuple[list[int], list[float]],
    ) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("")
        entries: list[tuple[str, str]] = []
        loss_entries: list[tuple[str, str]] = []
        shown: list[float] = []
        validation = [e for e in evaluations if e.split == "validation"]
        for metric, name, rich_color, color in self.SERIES:
            points = [(e.step, e.metrics[metric]) for e in validation if metric in e.metrics]
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], marker="hd", color=color)
                entries.append((name, rich_color))
                shown += [p[1] for p in points]
        losses: list[float] = []
        steps, values = train
        if steps:
            plt.plot(*thin(steps, values), marker="dot", color=self.TRAIN_LOSS[2], yside="right")
            loss_entries.append(self.TRAIN_LOSS[:2])
            losses += values
        val = [
            (e.step, e.metrics["loss"])
            for e in evaluations
            if e.split == "validation" and "loss" in e.metrics
        ]
        if val:
            plt.plot(
                [p[0] for p in val], [p[1] for p in val], marker="hd", color=self.VAL_LOSS[2], yside="right"
            )
            loss_entries.append(self.VAL_LOSS[:2])
            losses += [p[1] for p in val]
        if selected is not None:
            plt.vline(selected.step, color="gray")
        xs = [e.step for e in evaluations] + steps[-1:]
        lo, hi = 0, max(max(xs, default=1), 1)
        plt.xlim(lo, hi)
        ticks = step_ticks(lo, hi)
        plt.xticks([float(t) for t in ticks], [str(t) for t in ticks])
        if shown:
            plt.yticks(*value_ticks(min(shown), max(shown)))
        if losses:
            # plotext takes "right" here as it does in plot(); its type stubs say float
            plt.yticks(*value_ticks(min(losses), max(losses)), yside="right")  # type: ignore[arg-type]
        title = legend("", entries)
        if loss_entries:
            title += legend("  loss (right)", loss_entries)
        self.border_title = title
        self.refresh()


class EvaluationView(Vertical):
    """The Evaluation tab: history table and selected metrics above; confusion matrix and plot below.

    Short of COMPACT_BELOW_ROWS rows (the monitor's tabs at 80x24) only the upper part shows, and its
    title says that the monitor's zoom (z) shows the rest.
    """

    DEFAULT_CSS = """
    EvaluationView #eval-top, EvaluationView #eval-bottom { height: 1fr; }
    EvaluationView.-compact #eval-bottom { display: none; }
    EvaluationView #eval-metrics { width: 26; }
    EvaluationView #eval-table { width: 1fr; }
    EvaluationView #eval-confusion { width: auto; min-width: 46; max-width: 75%; }
    EvaluationView #eval-confusion-none { width: 1fr; padding: 0 1; color: $text-muted; }
    EvaluationView #eval-confusion-none { border-top: solid $primary 50%; }
    EvaluationView #eval-plot { width: 1fr; min-width: 24; }
    EvaluationView DataTable {
        border-top: solid $primary 50%;
        border-title-align: left;
        border-title-color: $foreground;
    }
    /* Short of rows, titles give way to figures: all six headline metrics fit the tabs at 80x24. */
    EvaluationView.-short DataTable { border-top: none; }
    EvaluationView #eval-empty { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, session: str, rule: BestRule | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.rule = rule or BestRule()
        self.evaluations: list[EvaluationEnded] = []
        self._refill_scheduled = False
        self._stale = False  # evaluations added while the tab was hidden: refilled when it shows
        self.best: int | None = None
        self.selected: EvaluationEnded | None = None
        self.compact = False
        self._train: tuple[list[int], list[float]] = ([], [])  # the training losses the plot was given

    @property
    def last(self) -> EvaluationEnded | None:
        """The newest evaluation, whichever is selected."""
        return self.evaluations[-1] if self.evaluations else None

    def compose(self) -> ComposeResult:
        yield Static("no evaluation yet", id="eval-empty")
        with Horizontal(id="eval-top"):
            yield MetricsList(id="eval-metrics")
            yield EvaluationTable(self.rule, id="eval-table")
        with Horizontal(id="eval-bottom"):
            yield ConfusionMatrix(id="eval-confusion")
            yield Static(NOT_RECORDED, id="eval-confusion-none")
            yield MetricPlot(id="eval-plot")

    def on_mount(self) -> None:
        self.query_one("#eval-confusion-none").display = False
        self._titles()

    @property
    def table(self) -> EvaluationTable:
        return self.query_one(EvaluationTable)

    @property
    def matrix(self) -> ConfusionMatrix:
        return self.query_one(ConfusionMatrix)

    @property
    def plot(self) -> MetricPlot:
        return self.query_one(MetricPlot)

    # ---------------------------------------------------------------- data in

    def add(self, evaluation: EvaluationEnded) -> None:
        self.evaluations.append(evaluation)
        # Refilled once per batch of events: a reattach replays hundreds of evaluations at once.
        if not self._refill_scheduled:
            self._refill_scheduled = True
            self.call_later(self._scheduled_refill)

    def _scheduled_refill(self) -> None:
        self._refill_scheduled = False
        if self.is_mounted and on_stack(self.screen):
            if not self.is_on_screen:
                # Hidden (another tab): filled when shown, or within HIDDEN_REFILL_S. A reattach's
                # pages would each refill hundreds of rows nobody sees (1 s of a 100k-event one).
                if not self._stale:
                    self._stale = True
                    self.set_timer(HIDDEN_REFILL_S, self._stale_refill)
                return
            self._refill()

    def _stale_refill(self) -> None:
        if self._stale and self.is_mounted and on_stack(self.screen):
            self._refill()

    def on_show(self) -> None:
        if self._stale and self.is_mounted:
            self._refill()

    def rewind(self, step: int) -> None:
        """Forget evaluations after ``step``: a resumed run repeats them from its checkpoint."""
        kept = [e for e in self.evaluations if e.step <= step]
        if len(kept) != len(self.evaluations):
            self.evaluations = kept
            self._refill()

    def _refill(self) -> None:
        self._stale = False
        self.best = best_index(self.evaluations, self.rule)
        self.query_one("#eval-empty").display = not self.evaluations
        self.table.fill(self.evaluations, self.best)
        self._select()
        self._titles()

    # ---------------------------------------------------------------- selection

    @on(DataTable.RowHighlighted, "#eval-table")
    def _row_highlighted(self, _message: DataTable.RowHighlighted) -> None:
        self._select()

    def _select(self) -> None:
        row = self.table.cursor_row
        selected = self.evaluations[row] if 0 <= row < len(self.evaluations) else None
        if selected is self.selected:
            return
        self.selected = selected
        if selected is not None:
            self.query_one(MetricsList).fill(selected)
            recorded = bool(selected.confusion)
            self.matrix.display = recorded
            self.query_one("#eval-confusion-none").display = not recorded
            if recorded:
                self.matrix.fill(selected)
        self._titles()
        self.draw(self._train)  # the selected evaluation's step is marked

    def _titles(self) -> None:
        rule = self.rule.text()
        zoom = "  (z: full height, for the matrix and the plot)" if self.compact else ""
        epochs = any(e.epoch is None for e in self.evaluations)
        unknown = f" · epoch {NOT_RECORDED}" if epochs else ""  # an ftc before 1.4 did not say
        self.table.border_title = Text(f"{BEST_MARK} best by {rule}{unknown}{zoom}")
        selected = self.selected
        if selected is None:
            return
        where = f"step {selected.step} [{selected.split}]"
        self.query_one(MetricsList).border_title = Text(where)
        short = SPLIT_NAMES.get(selected.split, selected.split)
        self.matrix.border_title = Text(f"confusion, step {selected.step} [{short}]: count, % of row")
        self.query_one("#eval-confusion-none", Static).update(
            Text(f"confusion matrix at {where}: {NOT_RECORDED} (an evaluation by an ftc before 1.3)")
        )

    def on_resize(self, event: Resize) -> None:
        self.fit(event.size.height)

    def fit(self, height: int | None = None) -> None:
        """Show the matrix and the plot when there is room (the tab zoomed or the terminal tall)."""
        height = self.size.height if height is None else height
        self.set_class(height < TITLES_FROM_ROWS, "-short")
        compact = height < COMPACT_BELOW_ROWS
        if compact != self.compact:
            self.compact = compact
            self.set_class(compact, "-compact")
            self._titles()
        # Rows filled while the tab was hidden: bring the selected one into view at the tab's size.
        self.call_after_refresh(lambda: self.table.move_cursor(row=self.table.cursor_row))

    # ---------------------------------------------------------------- the plot and the cells

    def draw(self, train: tuple[list[int], list[float]]) -> None:
        """Draw the plot (with the training loss so far), if it shows."""
        self._train = train
        if not self.compact and self.plot.is_mounted:
            self.plot.draw(self.evaluations, self.selected, train)

    @on(DataTable.CellSelected, "#eval-confusion")
    def _cell_selected(self, message: DataTable.CellSelected) -> None:
        message.stop()
        evaluation = self.matrix.evaluation
        if evaluation is None:
            return
        true, predicted = self.matrix.cell_labels(message.coordinate.row, message.coordinate.column)
        self.post_message(
            ErrorsRequested(
                session=self.session,
                step=evaluation.step,
                split=evaluation.split,
                true_label=true,
                predicted_label=predicted,
                predictions=evaluation.predictions,
            )
        )
