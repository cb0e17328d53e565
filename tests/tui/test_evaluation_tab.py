"""The monitor's Evaluation tab on a hand-written journal, driven by the keyboard at 80x24.

Every evaluation is listed (the best marked by the run's early-stopping metric), the cursor chooses
the confusion matrix shown, its counts and row shares are the journal's, and enter on a cell asks
for exactly that cell's examples.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from engine.config import dump_toml
from engine.protocol import EvaluationEnded, JobStopped, _Body
from engine.session import SessionPaths, write_state
from tests.tui.journals import T0, TOTAL, _steps, events_in_phase, write_journal
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.messages import ErrorsRequested
from tui.screens.monitor import MonitorScreen
from tui.widgets.evaluation import ConfusionMatrix, EvaluationTable, EvaluationView

SIZE = (80, 24)
LABELS = ("negative", "neutral", "positive")
# step -> (confusion [true][predicted], loss); validation has 20 negative, 30 neutral, 10 positive.
MATRICES = {
    8: ([[12, 6, 2], [9, 18, 3], [4, 3, 3]], 0.98),
    16: ([[15, 4, 1], [6, 22, 2], [2, 3, 5]], 0.81),
    24: ([[17, 2, 1], [3, 26, 1], [1, 2, 7]], 0.62),  # best macro F1
    32: ([[16, 3, 1], [2, 27, 1], [1, 3, 6]], 0.58),  # lowest loss
    40: ([[16, 2, 2], [4, 24, 2], [2, 2, 6]], 0.66),
}
TEST_STEP = 40


def figures(confusion: list[list[int]], loss: float) -> dict[str, Any]:
    """The metrics and per-class figures a matrix implies (as the engine computes them)."""
    n = len(confusion)
    per_class: dict[str, dict[str, float]] = {}
    for i, label in enumerate(LABELS[:n]):
        tp = confusion[i][i]
        predicted = sum(row[i] for row in confusion)
        support = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}
    total = sum(map(sum, confusion))
    metrics = {
        "loss": loss,
        "accuracy": sum(confusion[i][i] for i in range(n)) / total,
        "macro_precision": sum(c["precision"] for c in per_class.values()) / n,
        "macro_recall": sum(c["recall"] for c in per_class.values()) / n,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / n,
        "roc_auc": round(0.97 - loss / 5, 4),
    }
    return {"metrics": metrics, "per_class": per_class}


def evaluations(*, old: bool = False) -> list[EvaluationEnded]:
    """The run's evaluations in journal order; ``old``: as an ftc before 1.3 wrote them."""
    out = []
    for step, (confusion, loss) in MATRICES.items():
        extra = {} if old else {"confusion": confusion, "epoch": step / 20}
        predictions = None if old else f"evaluations/validation-step{step}.npz"
        out.append(EvaluationEnded(step=step, predictions=predictions, **figures(confusion, loss), **extra))
    test = [[7, 2, 1], [2, 12, 1], [1, 1, 3]]
    extra = {} if old else {"confusion": test, "epoch": 2.0}
    out.append(EvaluationEnded(step=TEST_STEP, split="test", **figures(test, 0.7), **extra))
    return out


def evaluated_session(
    root: Path,
    name: str = "run-evaluated",
    *,
    early_stopping: dict[str, Any] | None = None,
    old: bool = False,
) -> tuple[SessionPaths, int]:
    """A finished training session with five validation evaluations and a test one; (paths, events)."""
    paths = SessionPaths(root / name)
    paths.create()
    train: dict[str, Any] = {"max_steps": TOTAL}
    if early_stopping:
        train["early_stopping"] = early_stopping
    config = {"job": {"kind": "train"}, "model": {"source": "bert-base-uncased"}, "data": {"dir": "data"}}
    paths.config.write_text(dump_toml({**config, "train": train}), encoding="utf-8")
    events: list[_Body] = events_in_phase("training")[:-24]  # up to the training phase, no steps yet
    by_step = {e.step: e for e in evaluations(old=old) if e.split == "validation"}
    for step in _steps(TOTAL):
        events.append(step)
        if step.step in by_step:
            events.append(by_step[step.step])
    events += [e for e in evaluations(old=old) if e.split == "test"]
    events.append(JobStopped(step=TOTAL, reason="finished"))
    write_journal(paths, events)
    write_state(paths, status="finished", job="train", name=name, step=TOTAL, total_steps=TOTAL, created=T0)
    return paths, len(events)


async def until(pilot: Pilot[None], predicate: Callable[[], object], what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def open_tab(pilot: Pilot[None], events: int, *, zoom: bool = True) -> MonitorScreen:
    """The monitor, its journal replayed, on the Evaluation tab (zoomed: the matrix shows at 80x24)."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    await until(
        pilot, lambda: monitor.feed.events_seen >= events and monitor.feed.status != "?", "the replay"
    )
    await pilot.press("t")
    if zoom:
        await pilot.press("z")
    await pilot.pause(0.1)
    return monitor


def matrix_cells(matrix: ConfusionMatrix) -> list[list[tuple[int, str]]]:
    """The counts and row shares shown in each cell of the matrix."""
    out = []
    for row in range(matrix.row_count):
        cells = []
        for column in range(1, len(matrix.labels) + 1):
            count, share = str(matrix.get_cell_at((row, column))).split()
            cells.append((int(count), share))
        out.append(cells)
    return out


def expected_cells(confusion: list[list[int]]) -> list[list[tuple[int, str]]]:
    return [[(count, f"{round(100 * count / sum(row))}%") for count in row] for row in confusion]


async def test_every_evaluation_is_listed_and_the_best_marked(tmp_path: Path) -> None:
    paths, events = evaluated_session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await open_tab(pilot, events)
        table = monitor.query_one(EvaluationTable)
        rows = [[str(table.get_cell_at((r, c))) for c in range(4)] for r in range(table.row_count)]
        assert [(r[1], r[3]) for r in rows] == [(str(s), "val") for s in MATRICES] + [
            (str(TEST_STEP), "test")
        ]
        assert [r[2] for r in rows] == [f"{s / 20:.2f}" for s in MATRICES] + ["2.00"], "epochs"
        assert [r[0] for r in rows].count("★") == 1 and rows[2][0] == "★", "best macro F1: step 24"
        text = screen_text(app)
        assert "★ best by macro F1 max" in text and "not recorded" not in text


async def test_the_best_follows_the_runs_early_stopping_metric(tmp_path: Path) -> None:
    paths, events = evaluated_session(tmp_path, early_stopping={"metric": "loss", "patience": 3})
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await open_tab(pilot, events)
        table = monitor.query_one(EvaluationTable)
        marks = [str(table.get_cell_at((r, 0))) for r in range(table.row_count)]
        assert marks.index("★") == 3 and marks.count("★") == 1, "lowest loss: step 32"
        assert "best by loss min" in screen_text(app)


async def test_the_cursor_chooses_the_matrix_and_its_figures_are_the_journals(tmp_path: Path) -> None:
    paths, events = evaluated_session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await open_tab(pilot, events)
        view = monitor.query_one(EvaluationView)
        matrix = monitor.query_one(ConfusionMatrix)
        assert view.selected is not None and view.selected.split == "test", "the newest evaluation first"
        assert matrix.labels == list(LABELS)
        for step in reversed(list(MATRICES)):  # up, row by row, to the first evaluation
            await pilot.press("up")
            await until(pilot, lambda step=step: view.selected and view.selected.step == step, f"step {step}")
            assert matrix_cells(matrix) == expected_cells(MATRICES[step][0]), step
            assert [str(matrix.get_cell_at((r, 4))) for r in range(3)] == [
                str(sum(row)) for row in MATRICES[step][0]
            ]
            assert f"confusion, step {step} [val]: count, % of row" in screen_text(app)
        await pilot.press("down", "down")
        await until(pilot, lambda: view.selected and view.selected.step == 24, "down to step 24")
        assert matrix_cells(matrix) == expected_cells(MATRICES[24][0])


async def test_enter_on_a_cell_asks_for_exactly_its_examples(tmp_path: Path) -> None:
    paths, events = evaluated_session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    asked: list[ErrorsRequested] = []
    async with app.run_test(size=SIZE, message_hook=lambda m: asked.append(m)) as pilot:
        monitor = await open_tab(pilot, events)
        await pilot.press("up", "up", "up", "up")  # validation at step 16
        view = monitor.query_one(EvaluationView)
        await until(pilot, lambda: view.selected and view.selected.step == 16, "step 16")
        await pilot.press("tab")  # to the confusion matrix
        matrix = monitor.query_one(ConfusionMatrix)
        await until(pilot, lambda: matrix.has_focus, "the matrix focused")
        await pilot.press("down", "down", "right", "right")  # true positive, predicted neutral
        assert str(matrix.get_cell_at(matrix.cursor_coordinate)).split()[0] == str(MATRICES[16][0][2][1])
        await pilot.press("enter")
        await until(pilot, lambda: [m for m in asked if isinstance(m, ErrorsRequested)], "ErrorsRequested")
        request = next(m for m in asked if isinstance(m, ErrorsRequested))
        assert (request.session, request.step, request.split) == (paths.id, 16, "validation")
        assert (request.true_label, request.predicted_label) == ("positive", "neutral")
        assert request.predictions == "evaluations/validation-step16.npz"
        # The label column stands for the whole row: every example whose true label it is.
        if app.screen is not monitor:  # the App opened the error-analysis view: back to the matrix
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is monitor and matrix.has_focus, "back on the matrix")
        asked.clear()
        await pilot.press("left", "left", "up", "enter")
        await until(pilot, lambda: [m for m in asked if isinstance(m, ErrorsRequested)], "a row's request")
        request = next(m for m in asked if isinstance(m, ErrorsRequested))
        assert (request.true_label, request.predicted_label) == ("neutral", None)


async def test_an_older_journal_shows_what_there_is(tmp_path: Path) -> None:
    paths, events = evaluated_session(tmp_path, old=True)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await open_tab(pilot, events)
        table = monitor.query_one(EvaluationTable)
        assert table.row_count == len(MATRICES) + 1
        assert {str(table.get_cell_at((r, 2))) for r in range(table.row_count)} == {"-"}
        assert not monitor.query_one(ConfusionMatrix).display
        text = screen_text(app)
        assert "epoch not recorded" in text, text
        assert "confusion matrix at step 40 [test]:" in text and "before 1.3" in text, text


async def test_at_80x24_without_zoom_the_selected_metrics_show(tmp_path: Path) -> None:
    paths, events = evaluated_session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await open_tab(pilot, events, zoom=False)
        view = monitor.query_one(EvaluationView)
        await until(pilot, lambda: view.compact, "the short tab")
        await pilot.press("up")
        await until(pilot, lambda: view.selected and view.selected.step == 40, "step 40")
        metrics = view.selected.metrics if view.selected else {}
        lines = [" ".join(line.split()) for line in screen_text(app).splitlines()]
        for label, name in (("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("loss", "loss")):
            assert any(f"{label} {metrics[name]:.4f}" in line for line in lines), (label, lines)


async def test_a_new_evaluation_is_followed_from_the_last_row_only_and_a_resume_rewinds(
    tmp_path: Path,
) -> None:
    from textual.app import App, ComposeResult

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield EvaluationView("s", id="eval-view")

    ordered = [e for e in evaluations() if e.split == "validation"]
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(EvaluationView)
        view.table.focus()
        for evaluation in ordered[:3]:
            view.add(evaluation)
            await pilot.pause()
            assert view.selected is evaluation, "on the last row, the newest evaluation is shown"
        await pilot.press("up")
        await until(pilot, lambda: view.selected is ordered[1], "an older one chosen")
        view.add(ordered[3])
        await pilot.pause()
        assert view.selected is ordered[1] and view.table.row_count == 4, "a person's choice stays"
        view.rewind(16)  # a resume from the checkpoint at step 16 repeats the evaluations after it
        await pilot.pause()
        assert [e.step for e in view.evaluations] == [8, 16] and view.selected is ordered[1]
        assert view.best == 1, "the best of what is left"
