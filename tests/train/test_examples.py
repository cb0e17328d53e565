"""Per-example predictions: the engine writes them and names them; the console's reader pages them lazily."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.data.shards import load_manifest, read_shard
from engine.errors import OutputError
from engine.train import examples
from tests.train.conftest import make_ctx, train_config


def _split_frame(data: Path, split: str) -> pd.DataFrame:
    """A split's rows in position order (shard by shard), as the predictions address them."""
    n = len(load_manifest(data)["splits"][split]["shards"])
    return pd.concat([read_shard(data, split, i) for i in range(n)], ignore_index=True)


@pytest.fixture(scope="module")
def run(tiny_tf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from engine.train.config import parse_config
    from engine.train.loop import Trainer

    root = tmp_path_factory.mktemp("examples") / "session"
    cfg = train_config(tiny_tf, tiny_data, epochs=1, eval_every_steps=1)
    ctx, rec = make_ctx(root, config=cfg)
    parsed = parse_config(cfg)
    trainer = Trainer(parsed, Path(parsed.data.dir or ""), ctx)
    trainer.run()
    return trainer, rec, root


def test_each_evaluation_writes_its_predictions_and_its_event_names_them(run, tiny_data: Path) -> None:
    trainer, rec, root = run
    evals = rec.of("EvaluationEnded")
    n = trainer.state.total_steps  # one epoch
    assert [(e.split, e.step) for e in evals] == [("validation", s) for s in range(1, n + 1)] + [("test", n)]
    assert [e.predictions for e in evals] == [examples.relative_path(e.split, e.step) for e in evals]
    assert [e.epoch for e in evals] == pytest.approx([s / n for s in range(1, n + 1)] + [1.0])
    last = evals[-2]
    p = examples.load(root / str(last.predictions))
    frame = _split_frame(tiny_data, "validation")
    # Every validation example once, in position order, with its own row id and label.
    assert p.position.tolist() == list(range(len(frame)))
    assert p.row.tolist() == frame["row"].tolist() and p.label.tolist() == frame["label"].tolist()
    assert p.labels == ["neg", "pos"] and (p.split, p.step) == ("validation", n)
    assert float((p.pred == p.label).mean()) == pytest.approx(last.metrics["accuracy"])
    confusion = np.zeros((2, 2), int)
    np.add.at(confusion, (p.label, p.pred), 1)
    assert confusion.tolist() == last.confusion
    assert p.loss.mean() == pytest.approx(last.metrics["loss"], abs=2e-3)
    assert p.data_dir == tiny_data.resolve()


def test_only_the_last_evaluations_and_the_best_are_kept(run) -> None:
    trainer, rec, root = run
    kept = examples.stored(root)
    best, n = trainer.state.best_step, trainer.state.total_steps
    assert kept["validation"] == sorted({n - 2, n - 1, n, best})
    assert kept["test"] == [n] and kept["train"] == [n]
    named = rec.of("EvaluationEnded")[-1].predictions
    assert (root / named).is_file()  # never the one the latest event names


def test_the_training_split_is_scored_at_the_end_for_label_noise(run, tiny_data: Path) -> None:
    trainer, rec, root = run
    p = examples.load(root / examples.relative_path("train", trainer.state.total_steps))
    frame = _split_frame(tiny_data, "train")
    assert p.position.tolist() == list(range(len(frame)))  # fewer rows than the cap: all of them
    assert p.label.tolist() == frame["label"].tolist()
    assert any(f"label noise: scored all {len(frame)}" in e.text for e in rec.of("LogRecorded"))
    ranked = examples.by_loss(p)
    losses = p.loss[ranked]
    wrong = np.flatnonzero(p.label != p.pred)
    assert sorted(ranked.tolist()) == wrong.tolist()
    assert losses.tolist() == sorted(p.loss[wrong].tolist(), reverse=True)


def test_a_stop_during_the_label_noise_scoring_skips_it(run) -> None:
    """Up to 100k rows at the end take minutes on a CPU: a stop must not wait for them (a real run did)."""
    trainer, rec, root = run
    kept = root / examples.relative_path("train", trainer.state.total_steps)
    before = hashlib.sha256(kept.read_bytes()).hexdigest()
    batches = []
    real = trainer.evaluator._logits
    trainer.evaluator._logits = lambda *a: batches.append(1) or real(*a)
    trainer.ctx.control.stop_reason = "asked"
    try:
        trainer.score_training_split()
    finally:
        trainer.ctx.control.stop_reason = None
        trainer.evaluator._logits = real
    assert batches == []  # not one batch scored
    assert any("label noise: not scored (a stop was asked for)" in e.text for e in rec.of("LogRecorded"))
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == before  # the earlier scoring is kept


def test_a_sample_beyond_the_cap_is_seeded_and_sorted() -> None:
    a = examples.sample_positions(1_000_000, 1000, seed=7)
    assert len(a) == len(set(a.tolist())) == 1000 and (np.diff(a) > 0).all()
    assert a.tolist() == examples.sample_positions(1_000_000, 1000, seed=7).tolist()
    assert examples.sample_positions(5, 1000, seed=7).tolist() == [0, 1, 2, 3, 4]


def _fake(tmp_path: Path, data: Path, n: int = 48, seed: int = 0) -> examples.Predictions:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    true = rng.integers(0, 3, n)
    rel = examples.write(
        tmp_path,
        split="validation",
        step=5,
        epoch=0.5,
        labels=["a", "b", "c"],
        data_dir=data,
        positions=rng.permutation(n),
        rows=np.arange(n) + 1000,
        true=true,
        probs=probs,
    )
    return examples.load(tmp_path / rel)


def test_cells_sorting_and_noise_ranking_match_a_recomputation(tmp_path: Path, tiny_data: Path) -> None:
    p = _fake(tmp_path, tiny_data)
    for t in range(3):
        for q in range(3):
            cell = examples.select(p, t, q)
            assert cell.tolist() == [i for i in range(len(p)) if p.label[i] == t and p.pred[i] == q]
    assert examples.select(p).tolist() == [i for i in range(len(p)) if p.label[i] != p.pred[i]]
    wrong = examples.select(p)
    down = examples.by_confidence(p, wrong)
    up = examples.by_confidence(p, wrong, descending=False)
    assert (np.diff(p.p_pred[down]) <= 0).all() and (np.diff(p.p_pred[up]) >= 0).all()
    assert sorted(down.tolist()) == wrong.tolist()
    assert p.epoch == 0.5 and p.p_pred.tolist() == pytest.approx(p.top_probs[:, 0].astype(float).tolist())


def test_texts_are_read_from_the_needed_shards_only(tiny_data: Path) -> None:
    frame = _split_frame(tiny_data, "validation")  # 48 rows in shards of 50: one shard; train has three
    train = _split_frame(tiny_data, "train")
    texts = examples.Texts(tiny_data, "train")
    assert texts.get([3, 1]) == [train["text"][3], train["text"][1]]
    assert texts.reads == [(0, 2)]
    assert texts.get([120, 3]) == [train["text"][120], train["text"][3]]
    assert texts.reads == [(0, 2), (2, 1)]  # the cached one is not read again, shard 1 not at all
    assert examples.Texts(tiny_data, "validation").get([47]) == [frame["text"][47]]


def test_csv_export_round_trips_and_never_writes_over_the_data(tmp_path: Path, tiny_data: Path) -> None:
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny_data.rglob("*") if p.is_file()}
    rows = [(1, "a", 0.25, 'say "hi", then,\nbye'), (2, "b", 0.5, "plain")]
    out = tmp_path / "noise.csv"
    assert examples.write_csv(out, ["rank", "label", "p", "text"], rows, protect=[tiny_data]) == 2
    back = pd.read_csv(out)
    assert back.to_dict("list") == {
        "rank": [1, 2],
        "label": ["a", "b"],
        "p": [0.25, 0.5],
        "text": ['say "hi", then,\nbye', "plain"],
    }
    for target in (tiny_data / "manifest.json", tiny_data / "train" / "new.csv"):
        with pytest.raises(OutputError, match="is the run's data"):
            examples.write_csv(target, ["x"], [], protect=[tiny_data])
    with pytest.raises(OutputError, match="no such folder"):
        examples.write_csv(tmp_path / "nope" / "x.csv", ["x"], [])
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny_data.rglob("*") if p.is_file()}
    assert after == before


def test_pruning_keeps_the_last_the_best_and_drops_an_abandoned_future(tmp_path: Path) -> None:
    folder = tmp_path / examples.FOLDER
    folder.mkdir()
    for split, steps in {"validation": [2, 4, 6, 8, 10, 12, 14], "test": [14], "train": [14]}.items():
        for step in steps:
            (folder / examples.file_name(split, step)).write_bytes(b"x")
    # Resumed from step 6, evaluated again at 8 (best: 4): the old run's 10..14 are another path.
    examples.prune(tmp_path, protect=[("validation", 8), ("validation", 4)], upto=8)
    assert examples.stored(tmp_path) == {"validation": [4, 6, 8]}
    examples.prune(tmp_path, keep=1, protect=[("validation", 4)])
    assert examples.stored(tmp_path) == {"validation": [4, 8]}


def test_an_evaluation_says_its_number_of_batches_beforehand(run, tiny_data: Path) -> None:
    from engine.train.evaluation import Evaluator

    trainer, _, _ = run
    seen: list[tuple[int, int | None]] = []
    evaluator = Evaluator(trainer.model, trainer.tokenizer, tiny_data, trainer.manifest, trainer.labels)
    t = trainer.t.model_copy(update={"eval_batch_size": 7})  # windows and shards end mid-batch
    for positions in (None, examples.sample_positions(128, 37, seed=1)):
        seen.clear()
        evaluator.run("train", t, lambda done, total: seen.append((done, total)), positions=positions)
        assert seen[-1][0] == seen[-1][1] == len(seen) - 1
        rows = 128 if positions is None else 37
        assert len(evaluator.scored.positions) == rows  # type: ignore[union-attr]


def test_a_stopped_and_resumed_run_writes_the_same_predictions(
    run, tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from engine.jobs.base import StopRequested
    from engine.train.config import parse_config
    from engine.train.loop import Trainer

    _, _, full_root = run
    cfg = train_config(tiny_tf, tiny_data, epochs=1, eval_every_steps=1)
    root = tmp_path / "session"
    ctx, rec = make_ctx(root, config=cfg)
    first = Trainer(parse_config(cfg), tiny_data, ctx)

    def stop_at_4(event: Any) -> None:
        if type(event).__name__ == "StepEnded" and event.step == 4:
            first.ctx.control.request_stop("test")

    rec.on_event = stop_at_4
    with pytest.raises(StopRequested):
        first.run()
    ctx2, _ = make_ctx(root, resume=True, config=cfg)
    Trainer(parse_config(cfg), tiny_data, ctx2).run(resume=True)
    assert examples.stored(root) == examples.stored(full_root)
    for split, steps in examples.stored(root).items():
        a, b = (examples.load(r / examples.relative_path(split, steps[-1])) for r in (full_root, root))
        assert a.position.tolist() == b.position.tolist() and a.pred.tolist() == b.pred.tolist()
        np.testing.assert_allclose(a.p_true, b.p_true, atol=1e-5)
