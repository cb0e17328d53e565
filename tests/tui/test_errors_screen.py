"""The error-analysis screen, driven by keys: a cell's examples, sort, search, lazy texts, label noise, CSV.

Sessions are written by hand (tests/tui/journals.py for the journal; prepared shards from
tests/support/tiny.py; predictions files through engine.train.examples with seeded
probabilities), so every expectation is recomputed from the same predictions file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from textual.pilot import Pilot

from engine.data.shards import read_shard
from engine.protocol import EvaluationEnded, JobStopped
from engine.session import SessionPaths, write_state
from engine.train import examples
from tests.support.tiny import write_dataset
from tests.tui.journals import TOTAL, _steps, events_in_phase, session_in_phase, write_journal
from tui.app import FtcApp
from tui.messages import ErrorsRequested
from tui.screens import errors as errors_screen
from tui.screens.errors import PAGE, ErrorsScreen

LABELS = ("neg", "mid", "pos")
STEP = 40


def _predictions(paths: SessionPaths, split: str, n: int, seed: int) -> examples.Predictions:
    """Seeded probabilities that are right about 70% of the time, written as the engine writes them."""
    frames = [read_shard(paths.data, split, i) for i in range(-(-n // 100))]
    labels = pd.concat(frames, ignore_index=True)["label"].to_numpy()
    rows = pd.concat(frames, ignore_index=True)["row"].to_numpy()
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(LABELS))) * 1.5
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rel = examples.write(
        paths.root,
        split=split,
        step=STEP,
        epoch=2.0,
        labels=LABELS,
        data_dir=paths.data,
        positions=np.arange(n),
        rows=rows,
        true=labels,
        probs=probs,
    )
    return examples.load(paths.root / rel)


def errors_session(root: Path, *, validation: int = 1000, train: int = 200) -> SessionPaths:
    """A stopped session (hand-written journal) with prepared data and kept predictions at step 40."""
    paths = session_in_phase(root, "stopped")
    write_dataset(
        paths.data, n_train=train, n_validation=validation, n_test=10, labels=LABELS, shard_rows=100, seed=3
    )
    _predictions(paths, "validation", validation, seed=1)
    _predictions(paths, "train", train, seed=2)
    return paths


async def _until(pilot: Pilot[None], check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _screen(app: FtcApp) -> ErrorsScreen:
    assert isinstance(app.screen, ErrorsScreen)
    return app.screen


async def _shown(pilot: Pilot[None]) -> ErrorsScreen:
    """Wait until the errors screen is up and has its first page (or knows there is none)."""
    await _until(pilot, lambda: isinstance(pilot.app.screen, ErrorsScreen), "the errors screen")
    screen = _screen(pilot.app)  # type: ignore[arg-type]
    await _until(pilot, lambda: screen.source is not None and not screen.loading, "the first page")
    await _until(pilot, lambda: len(screen.shown) > 0 or screen.done, "rows")
    return screen


def _texts(paths: SessionPaths, split: str) -> list[str]:
    frames = []
    i = 0
    while (paths.data / split / f"shard-{i:05d}.h5").exists():
        frames.append(read_shard(paths.data, split, i))
        i += 1
    return pd.concat(frames, ignore_index=True)["text"].tolist()


@pytest.fixture
def session(tmp_path: Path) -> SessionPaths:
    return errors_session(tmp_path)


def _open_cell(app: FtcApp, paths: SessionPaths, true: str | None, pred: str | None) -> None:
    rel = examples.relative_path("validation", STEP)
    app.post_message(ErrorsRequested(paths.id, STEP, "validation", true, pred, rel))


async def test_a_cell_shows_exactly_its_examples_by_confidence(session: SessionPaths) -> None:
    app = FtcApp(session.root.parent)
    p = examples.load(session.root / examples.relative_path("validation", STEP))
    async with app.run_test(size=(80, 24)) as pilot:
        for true, pred in [("mid", "pos"), ("pos", "pos")]:
            _open_cell(app, session, true, pred)
            screen = await _shown(pilot)
            cell = [i for i in range(len(p)) if LABELS[p.label[i]] == true and LABELS[p.pred[i]] == pred]
            if true != pred:
                assert 0 < len(cell) <= PAGE and sorted(screen.shown) == cell  # the whole cell, nothing else
            else:
                assert len(cell) > PAGE and set(screen.shown) < set(cell)  # the diagonal's first page
            top = sorted((p.p_pred[i] for i in cell), reverse=True)[:PAGE]
            assert [p.p_pred[i] for i in screen.shown] == top
            assert f"cell true {true} → predicted {pred}: {len(cell)}" in str(
                screen.query_one("#errors-summary").render()
            )
            texts = _texts(session, "validation")
            assert [screen.texts[i] for i in screen.shown] == [texts[p.position[i]] for i in screen.shown]
            await pilot.press("o")  # least confident first
            await _until(pilot, lambda s=screen: not s.descending and len(s.shown) > 0, "the list again")  # type: ignore[misc]
            assert [p.p_pred[i] for i in screen.shown] == sorted(p.p_pred[i] for i in cell)[:PAGE]
            await pilot.press("escape")
            await _until(pilot, lambda: not isinstance(app.screen, ErrorsScreen), "back")


async def test_the_monitor_key_opens_every_error_of_the_latest_evaluation_lazily(
    session: SessionPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[int, int]] = []
    real = examples.Texts._read

    def spy(self: examples.Texts, shard: int, offsets: np.ndarray) -> list[str]:
        reads.append((shard, len(offsets)))
        return real(self, shard, offsets)

    monkeypatch.setattr(examples.Texts, "_read", spy)
    p = examples.load(session.root / examples.relative_path("validation", STEP))
    wrong = examples.by_confidence(p, examples.select(p))
    assert len(wrong) > 2 * PAGE
    app = FtcApp(session.root.parent, attach=session.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: type(app.screen).__name__ == "MonitorScreen", "the monitor")
        await pilot.press("a")
        screen = await _shown(pilot)
        first = wrong[:PAGE].tolist()
        assert screen.shown == first
        # Only the first page's rows were read, and only from the shards they lie in.
        assert sum(n for _, n in reads) == PAGE
        assert {s for s, _ in reads} == {int(x) for x in p.position[first] // 100}
        summary = str(screen.query_one("#errors-summary").render())
        assert f"{len(wrong):,} misclassified of 1,000" in summary and "more as you scroll" in summary
        await pilot.press("enter")  # the first example in full
        await _until(pilot, lambda: type(app.screen).__name__ == "TextScreen", "the example in full")
        full: Any = app.screen
        i = first[0]
        assert full.text.startswith(_texts(session, "validation")[p.position[i]] + "\n")
        assert f"predicted: {LABELS[p.pred[i]]}" in full.text and f"data row {p.row[i]}" in full.text
        await pilot.press("escape")
        await _until(pilot, lambda: app.screen is screen, "back to the list")
        await pilot.press("ctrl+end")  # the cursor near the end fetches the next page
        await _until(pilot, lambda: len(screen.shown) >= 2 * PAGE, "the next page")
        assert screen.shown[: 2 * PAGE] == wrong[: 2 * PAGE].tolist()


async def test_search_finds_the_matching_errors_in_order(
    session: SessionPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small reads, reported back often: the search goes on by itself until the end (fewer than a page).
    monkeypatch.setattr(errors_screen, "SCAN", 20)
    monkeypatch.setattr(errors_screen, "SCAN_REPORT", 60)
    app = FtcApp(session.root.parent)
    p = examples.load(session.root / examples.relative_path("validation", STEP))
    texts = _texts(session, "validation")
    word = "LoVeLy"  # case does not matter
    want = [
        i for i in examples.by_confidence(p, examples.select(p)).tolist() if "lovely" in texts[p.position[i]]
    ]
    assert 0 < len(want) <= PAGE
    async with app.run_test(size=(80, 24)) as pilot:
        _open_cell(app, session, None, None)
        screen = await _shown(pilot)
        await pilot.press("slash", *word, "enter")
        await _until(pilot, lambda: screen.done and screen.search_text == word, "the search")
        assert screen.shown == want
        assert f"search {word!r}: {len(want)} found" in str(screen.query_one("#errors-summary").render())
        await pilot.press("c")  # clears the search (and any cell)
        await _until(pilot, lambda: screen.search_text == "" and len(screen.shown) == PAGE, "every error")
        await pilot.press("slash", *"zzz", "enter")
        await _until(pilot, lambda: screen.search_text == "zzz" and screen.done, "nothing found")
        assert screen.shown == []
        await pilot.press("slash", "escape")  # escape in the search field clears it, and stays here
        await _until(pilot, lambda: screen.search_text == "" and len(screen.shown) == PAGE, "every error")
        assert app.screen is screen and not screen.has_class("-searching")


async def test_label_noise_is_ranked_by_loss_and_exports_as_csv(
    session: SessionPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the export offers to write; paths typed are relative to it
    app = FtcApp(session.root.parent)
    train = examples.load(session.root / examples.relative_path("train", STEP))
    texts = _texts(session, "train")
    ranked = examples.by_loss(train).tolist()
    wrong = [i for i in range(len(train)) if train.label[i] != train.pred[i]]
    assert sorted(ranked) == wrong and len(ranked) <= PAGE
    assert [train.loss[i] for i in ranked] == sorted((train.loss[i] for i in wrong), reverse=True)
    data_before = {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in session.data.rglob("*") if p.is_file()
    }
    out = tmp_path / f"{session.id}-label-noise-step{STEP}.csv"  # the path offered
    async with app.run_test(size=(80, 24)) as pilot:
        _open_cell(app, session, None, None)
        screen = await _shown(pilot)
        await pilot.press("n")
        await _until(
            pilot, lambda: screen.mode == "noise" and screen.done and len(screen.shown) > 0, "the noise list"
        )
        assert screen.shown == ranked

        async def export(typed: str | None, *answer: str) -> None:
            await pilot.press("e")
            await _until(pilot, lambda: type(app.screen).__name__ == "SavePathScreen", "the path question")
            if typed is not None:
                await pilot.press("ctrl+u", *typed)
            await pilot.press("enter", *answer)
            await pilot.pause(0.2)

        await export(None)
        await _until(pilot, out.exists, "the CSV")
        back = pd.read_csv(out, keep_default_na=False)
        assert back["rank"].tolist() == list(range(1, len(ranked) + 1))
        assert back["row"].tolist() == [int(train.row[i]) for i in ranked]
        assert back["given"].tolist() == [LABELS[train.label[i]] for i in ranked]
        assert back["text"].tolist() == [texts[train.position[i]] for i in ranked]
        written = out.read_bytes()
        out.write_text("mine\n")
        await export(None, "n")  # asked before replacing: no
        assert out.read_text() == "mine\n"
        await export(None, "y")
        await _until(pilot, lambda: out.read_bytes() == written, "the CSV replaced")
        await export(f"{session.id}/data/train/noise.csv")  # into the run's data: refused
        await _until(
            pilot, lambda: "is the run's data" in str(screen.query_one("#errors-notice").render()), "no"
        )
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in session.data.rglob("*") if p.is_file()}
    assert after == data_before


async def test_a_session_without_predictions_says_so(tmp_path: Path) -> None:
    paths = session_in_phase(tmp_path, "stopped")
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: type(app.screen).__name__ == "MonitorScreen", "the monitor")
        await pilot.press("a")
        await _until(pilot, lambda: isinstance(app.screen, ErrorsScreen), "the errors screen")
        screen = _screen(app)
        notice: Any = screen.query_one("#errors-notice")
        await _until(pilot, lambda: "no per-example predictions" in str(notice.render()), "the notice")
        assert screen.shown == []


async def test_enter_on_a_confusion_cell_in_the_evaluation_tab_lists_exactly_its_examples(
    session: SessionPaths,
) -> None:
    """The whole way by keys: monitor, Evaluation tab, the matrix, a cell, its examples."""
    p = examples.load(session.root / examples.relative_path("validation", STEP))
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (p.label, p.pred), 1)
    evaluation = EvaluationEnded(
        step=STEP,
        epoch=2.0,
        metrics={"accuracy": float((p.label == p.pred).mean()), "loss": float(p.loss.mean())},
        per_class={n: {"f1": 0.5, "support": float(confusion[i].sum())} for i, n in enumerate(LABELS)},
        confusion=confusion.tolist(),
        predictions=examples.relative_path("validation", STEP),
    )
    events = [
        *events_in_phase("training")[:-24],
        *_steps(TOTAL),
        evaluation,
        JobStopped(step=TOTAL, reason="finished"),
    ]
    write_journal(session, events)
    write_state(session, status="finished", job="train", step=TOTAL, total_steps=TOTAL)
    app = FtcApp(session.root.parent, attach=session.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: type(app.screen).__name__ == "MonitorScreen", "the monitor")
        monitor: Any = app.screen
        await _until(pilot, lambda: monitor.feed.events_seen >= len(events), "the replay")
        await pilot.press("t", "z", "tab")  # the Evaluation tab, zoomed, its confusion matrix
        await pilot.pause(0.2)
        await pilot.press("down", "right", "right", "right", "enter")  # true mid, predicted pos
        screen = await _shown(pilot)
        cell = [i for i in range(len(p)) if (p.label[i], p.pred[i]) == (1, 2)]
        assert screen.cell == ("mid", "pos") and sorted(screen.shown) == cell
