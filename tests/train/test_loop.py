"""The training loop end to end on a tiny model: learning, events, exact resume, freezing, refusals."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.jobs.base import StopRequested
from engine.model import load_for_prediction, load_model
from engine.train import checkpoints as ck
from engine.train.callbacks import Callback, StepReport
from engine.train.config import ConfigError, parse_config
from engine.train.job import run as run_job
from engine.train.loop import Trainer
from tests.train.conftest import Recorder, make_ctx, train_config

# Accumulation, evaluations and best checkpoints all happen inside the resumed stretch. With shards of
# 50, 50 and 28 rows and batches of 8 an epoch is 7 + 7 + 4 = 18 batches, 9 steps of 2 micro-batches.
RESUME = {"batch_size": 8, "grad_accum_steps": 2, "eval_every_steps": 3, "epochs": 2}


def _trainer(
    root: Path, cfg: dict[str, Any], resume: bool = False, record: bool = True
) -> tuple[Trainer, Recorder]:
    ctx, rec = make_ctx(root, resume=resume, config=cfg)
    parsed = parse_config(cfg)
    return Trainer(parsed, Path(parsed.data.dir or ""), ctx, record_batches=record), rec


@pytest.fixture(scope="module")
def full_run(tiny_tf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("full") / "session"
    trainer, rec = _trainer(root, train_config(tiny_tf, tiny_data, **RESUME))
    summary = trainer.run()
    return trainer, rec, summary


def test_events_checkpoints_and_saved_model(full_run) -> None:
    trainer, rec, summary = full_run
    assert type(rec.events[0]).__name__ == "LogRecorded" or type(rec.events[0]).__name__ == "JobStarted"
    started = rec.of("JobStarted")[0]
    assert started.total_steps == 18 and started.step == 0
    steps = rec.of("StepEnded")
    assert [s.step for s in steps] == list(range(1, 19))
    assert all(s.loss is not None and s.learning_rate is not None and s.grad_norm is not None for s in steps)
    assert steps[-1].epoch == pytest.approx(2.0)
    # After the last step only its validation and the test evaluation remain: the ETA counts them.
    assert 0 < steps[-1].eta_s < steps[-2].eta_s  # type: ignore[operator]
    assert steps[0].learning_rate == pytest.approx(3e-3 / 2)  # warmup_steps = 2
    evals = [(e.step, e.split) for e in rec.of("EvaluationEnded")]
    assert evals == [(step, "validation") for step in (3, 6, 9, 12, 15, 18)] + [(18, "test")]
    last = rec.of("EvaluationEnded")[-1]
    assert {"loss", "accuracy", "macro_f1", "macro_precision", "macro_recall", "roc_auc"} <= set(last.metrics)
    assert set(last.per_class) == {"neg", "pos"}
    saved = rec.of("CheckpointSaved")
    assert saved[-1].step == 18 and saved[-1].reason in ("final", "best")
    assert rec.state["total_steps"] == 18 and rec.state["best_metric_name"] == "macro_f1"
    plan = rec.of("SchedulePlanned")[0]
    assert plan.steps[0] == 1 and plan.steps[-1] == 18
    # The planned curve and the actual one are drawn against the same step numbers.
    planned = dict(zip(plan.steps, plan.learning_rates, strict=True))
    assert [planned[s.step] for s in steps] == pytest.approx([s.learning_rate for s in steps])
    kept = [ck.step_of(p) for p in ck.complete(trainer.ckpt_dir)]
    assert summary["best_step"] in kept and 18 in kept
    assert list(trainer.ctx.paths.tensorboard.glob("events.out.tfevents.*"))
    tok, model, id2label = load_for_prediction(trainer.ctx.paths.model)
    assert id2label == {0: "neg", 1: "pos"}
    enc = tok(["great day"], return_tensors="np")
    ours = trainer.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], training=False)
    theirs = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], training=False)
    np.testing.assert_allclose(ours.logits.numpy(), theirs.logits.numpy(), atol=1e-6)


def test_stopped_and_resumed_run_matches_the_uninterrupted_one(
    full_run, tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    full, full_rec, _ = full_run
    cfg = train_config(tiny_tf, tiny_data, **RESUME)
    root = tmp_path / "session"
    first, rec = _trainer(root, cfg)

    def stop_at_5(event: Any) -> None:
        if type(event).__name__ == "StepEnded" and event.step == 5:
            first.ctx.control.request_stop("test")

    rec.on_event = stop_at_5
    with pytest.raises(StopRequested):
        first.run()
    assert ck.latest_complete(root / "checkpoints").name == "ckpt-5"
    # A later checkpoint killed mid-write (no marker) must be passed over.
    shutil.copytree(root / "checkpoints" / "ckpt-5", root / "checkpoints" / "ckpt-7")
    (root / "checkpoints" / "ckpt-7" / ck.MARKER).unlink()
    second, rec2 = _trainer(root, cfg, resume=True)
    second.run(resume=True)
    assert rec2.of("JobStarted")[0].step == 5
    assert first.batch_log + second.batch_log == full.batch_log  # same batches, none replayed
    a = ck.load_arrays(full.ckpt_dir / "ckpt-18", "weights.npz")
    b = ck.load_arrays(root / "checkpoints" / "ckpt-18", "weights.npz")
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) <= 1e-5
    full_losses = [s.loss for s in full_rec.of("StepEnded")]
    resumed = [s.loss for s in rec.of("StepEnded")] + [s.loss for s in rec2.of("StepEnded")]
    np.testing.assert_allclose(resumed, full_losses, atol=1e-5)
    assert [e.metrics["loss"] for e in rec2.of("EvaluationEnded")] == pytest.approx(
        [e.metrics["loss"] for e in full_rec.of("EvaluationEnded") if e.step > 5], abs=1e-5
    )


def test_resume_from_a_chosen_earlier_checkpoint(
    full_run, tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    full, _, _ = full_run
    root = tmp_path / "session"
    shutil.copytree(full.ctx.paths.root, root)
    before = ck.complete(root / "checkpoints")
    chosen = min(ck.step_of(p) for p in before)
    later = sorted(p.name for p in before if ck.step_of(p) > chosen)
    assert chosen < 18 and "ckpt-18" in later
    ctx, rec = make_ctx(root, resume=True, config=train_config(tiny_tf, tiny_data, **RESUME))
    ctx.resume_from = f"ckpt-{chosen}"
    trainer = Trainer(parse_config(ctx.config), tiny_data, ctx, record_batches=True)
    started = time.time()
    trainer.run(resume=True)
    assert rec.of("JobStarted")[0].step == chosen
    assert trainer.batch_log == [entry for entry in full.batch_log if entry[0] > chosen]
    # The abandoned run's later checkpoints are kept aside, not reused or pruned in place of new ones.
    (aside,) = (root / "checkpoints").glob("abandoned-*")
    assert sorted(p.name for p in aside.iterdir()) == later
    assert any(str(aside) in e.text and e.level == "warning" for e in rec.of("LogRecorded"))
    latest = ck.latest_complete(root / "checkpoints")
    assert latest is not None and latest.name == "ckpt-18"
    assert all(
        ck.read_state(p)["time"] >= started for p in ck.complete(root / "checkpoints") if p != before[0]
    )
    a = ck.load_arrays(full.ckpt_dir / "ckpt-18", "weights.npz")
    b = ck.load_arrays(latest, "weights.npz")
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) <= 1e-5


def test_resume_refuses_a_changed_config(full_run, tiny_tf: Path, tiny_data: Path) -> None:
    full, _, _ = full_run
    changed = train_config(tiny_tf, tiny_data, **{**RESUME, "learning_rate": 1e-4})
    trainer, _ = _trainer(full.ctx.paths.root, changed, resume=True)
    with pytest.raises(ck.CheckpointError, match=r"train.learning_rate 0.003 -> 0.0001"):
        trainer.run(resume=True)


def test_loss_falls_on_learnable_data(tiny_tf: Path, tmp_path: Path) -> None:
    from tests.support.tiny import write_dataset

    data = write_dataset(tmp_path / "data", n_train=512, n_validation=64, n_test=64, shard_rows=256, seed=3)
    cfg = train_config(
        tiny_tf, data, batch_size=16, epochs=3, schedule="constant", warmup_steps=8, learning_rate=3e-3
    )
    ctx, rec = make_ctx(tmp_path / "session", config=cfg)
    summary = run_job(ctx)
    losses = [s.loss for s in rec.of("StepEnded")]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert summary["test"]["accuracy"] > 0.9


@pytest.mark.parametrize(
    ("freeze", "frozen_parts"),
    [
        ({"freeze": "head_only"}, ("/bert/embeddings/", "/bert/encoder/")),
        # Steps 0-1 head only, 2-3 plus layer 1, 4 plus layer 0; the embeddings would open at step 6.
        ({"freeze": "progressive", "unfreeze_every_steps": 2}, ("/bert/embeddings/",)),
    ],
)
def test_frozen_layers_keep_their_weights(
    freeze, frozen_parts, tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    cfg = train_config(tiny_tf, tiny_data, max_steps=5, weight_decay=0.1, **freeze)
    trainer, rec = _trainer(tmp_path / "s", cfg, record=False)
    trainer.run()
    assert trainer.batch_log == []  # kept only when asked: it would grow with every step of a long run
    start = load_model(tiny_tf, 2, seed=7).variables
    for v, s in zip(trainer.model.variables, start, strict=True):
        same = np.array_equal(v.numpy(), s.numpy())
        assert same == any(part in v.name for part in frozen_parts), v.name
    assert any("frozen" in e.text for e in rec.of("LogRecorded"))


def test_early_stopping_restores_the_best_weights(tiny_tf: Path, tiny_data: Path, tmp_path: Path) -> None:
    # Validation loss checked every step with patience 1: it stops at the first non-improvement.
    es = {"metric": "loss", "patience": 1, "restore_best": True}
    cfg = train_config(
        tiny_tf, tiny_data, learning_rate=0.05, eval_every_steps=1, early_stopping=es, epochs=3
    )
    trainer, rec = _trainer(tmp_path / "s", cfg)
    summary = trainer.run()
    assert summary["stopped_early"] and summary["steps"] < 27
    losses = [e.metrics["loss"] for e in rec.of("EvaluationEnded") if e.split == "validation"]
    assert summary["best_metric"] == pytest.approx(min(losses))
    assert losses[-1] > min(losses)
    best = ck.load_arrays(trainer.ckpt_dir / f"ckpt-{summary['best_step']}", "weights.npz")
    for var, value in zip(trainer.model.variables, best, strict=True):
        np.testing.assert_array_equal(var.numpy(), value)
    assert summary["restored_best"] and summary["best_step"] != summary["steps"]


def test_one_checkpoint_event_per_folder(tiny_tf: Path, tiny_data: Path, tmp_path: Path) -> None:
    # Step 3 is a best evaluation, a periodic checkpoint and the final one: one folder, one list row.
    cfg = train_config(tiny_tf, tiny_data, max_steps=3, eval_every_steps=3, checkpoint_every_steps=3)
    trainer, rec = _trainer(tmp_path / "s", cfg)
    trainer.run()
    assert [(e.step, e.reason) for e in rec.of("CheckpointSaved")] == [(3, "best")]
    assert [p.name for p in ck.complete(trainer.ckpt_dir)] == ["ckpt-3"]


def _one_class_validation(data: Path) -> Path:
    import pandas as pd

    manifest = json.loads((data / "manifest.json").read_text())
    split = manifest["splits"]["validation"]
    for shard in split["shards"]:
        frame = pd.read_hdf(data / shard["path"], key="rows")
        frame["label"] = frame["label"] * 0
        frame.to_hdf(data / shard["path"], key="rows", format="table")
        shard["label_counts"] = {"neg": len(frame)}
    split["label_counts"] = {"neg": split["rows"]}
    (data / "manifest.json").write_text(json.dumps(manifest))
    return data


def test_roc_auc_stopping_survives_a_one_class_validation_split(tiny_tf: Path, tmp_path: Path) -> None:
    from tests.support.tiny import write_dataset

    data = _one_class_validation(write_dataset(tmp_path / "data", n_train=64, n_validation=24, n_test=24))
    es = {"metric": "roc_auc", "patience": 1}
    trainer, rec = _trainer(
        tmp_path / "s", train_config(tiny_tf, data, max_steps=4, eval_every_steps=2, early_stopping=es)
    )
    summary = trainer.run()
    assert summary["steps"] == 4 and not summary["stopped_early"] and summary["best_metric"] is None
    warnings = [e.text for e in rec.of("LogRecorded") if e.level == "warning"]
    assert any("no examples of pos" in w for w in warnings)
    assert sum("roc_auc is undefined" in w for w in warnings) == 2  # steps 2 and 4


def test_max_length_beyond_the_model_is_refused_at_start(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    trainer, rec = _trainer(tmp_path / "s", train_config(tiny_tf, tiny_data, max_length=96))
    with pytest.raises(ConfigError, match=r"max_length: 96 .*\(64 tokens, its max_position_embeddings\)"):
        trainer.run()
    assert not rec.of("StepEnded")


def test_periodic_checkpoints_are_written_while_training_goes_on(
    full_run, tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full, _, _ = full_run
    real_run = ck.BackgroundWriter._run

    def slow_run(self: ck.BackgroundWriter, write: Any) -> None:
        time.sleep(0.5)  # a slow disk: the next steps run (and update the weights) before the write
        real_run(self, write)

    monkeypatch.setattr(ck.BackgroundWriter, "_run", slow_run)
    cfg = train_config(tiny_tf, tiny_data, **RESUME, checkpoint_every_steps=4, keep_last=20)
    root = tmp_path / "session"
    trainer, rec = _trainer(root, cfg)
    at_step_4: list[np.ndarray] = []

    def note_weights(event: Any) -> None:
        if type(event).__name__ == "StepEnded" and event.step == 4:
            at_step_4.extend(np.array(v.numpy(), copy=True) for v in trainer.model.variables)

    rec.on_event = note_weights
    trainer.run()
    order = [(type(e).__name__, getattr(e, "step", None)) for e in rec.events]
    assert order.index(("StepEnded", 5)) < order.index(("CheckpointSaved", 4))  # not waited for
    # The checkpoint holds step 4's weights, not those of the steps run during its write.
    saved = ck.load_arrays(root / "checkpoints" / "ckpt-4", "weights.npz")
    assert len(saved) == len(at_step_4)
    assert all(np.array_equal(a, b) for a, b in zip(saved, at_step_4, strict=True))
    assert not all(
        np.array_equal(v.numpy(), b) for v, b in zip(trainer.model.variables, at_step_4, strict=True)
    )
    # And resuming from it reproduces the uninterrupted run.
    ctx, _ = make_ctx(root, resume=True, config=cfg)
    ctx.resume_from = "4"
    resumed = Trainer(parse_config(cfg), tiny_data, ctx, record_batches=True)
    resumed.run(resume=True)
    assert resumed.batch_log == [entry for entry in full.batch_log if entry[0] > 4]
    a = ck.load_arrays(full.ckpt_dir / "ckpt-18", "weights.npz")
    b = ck.load_arrays(root / "checkpoints" / "ckpt-18", "weights.npz")
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) <= 1e-5


def test_a_failed_background_checkpoint_fails_the_job(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(root: Path, step: int, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device", str(root / f"ckpt-{step}"))

    monkeypatch.setattr(ck, "save", full_disk)
    cfg = train_config(tiny_tf, tiny_data, max_steps=8, checkpoint_every_steps=2)
    trainer, rec = _trainer(tmp_path / "s", cfg)
    with pytest.raises(OSError, match="No space left on device"):
        trainer.run()
    assert not rec.of("CheckpointSaved")
    assert max(s.step for s in rec.of("StepEnded")) < 8  # stopped at the failure, not at the end


class _Hooks(Callback):
    """Notes every hook the trainer calls, with what identifies it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.calls.append(("train_begin", trainer.state.step))

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        self.calls.append(("step_end", report.step))

    def on_evaluate(self, trainer: Trainer, split: str, figures: Any) -> None:
        self.calls.append(("evaluate", trainer.state.step, split))

    def on_save(self, trainer: Trainer, step: int, path: Path, reason: str, metric: float | None) -> None:
        self.calls.append(("save", step, reason))

    def on_train_end(self, trainer: Trainer) -> None:
        self.calls.append(("train_end", trainer.state.step))

    def on_close(self, trainer: Trainer) -> None:
        self.calls.append(("close",))


def test_callbacks_are_called_at_each_point_in_order(tiny_tf: Path, tiny_data: Path, tmp_path: Path) -> None:
    cfg = train_config(tiny_tf, tiny_data, max_steps=3, eval_every_steps=2)
    ctx, rec = make_ctx(tmp_path / "s", config=cfg)
    hooks = _Hooks()
    Trainer(parse_config(cfg), tiny_data, ctx, callbacks=[hooks]).run()
    assert hooks.calls == [
        ("train_begin", 0),
        ("step_end", 1),
        ("step_end", 2),
        ("evaluate", 2, "validation"),
        ("save", 2, "best"),  # the first evaluation is the best so far
        ("step_end", 3),
        ("evaluate", 3, "validation"),  # the last step is evaluated too (no better than step 2 here)
        ("save", 3, "final"),
        ("evaluate", 3, "test"),
        ("train_end", 3),
        ("close",),
    ]
    assert [(e.step, e.reason) for e in rec.of("CheckpointSaved")] == [(2, "best"), (3, "final")]


def test_a_worker_that_is_not_the_chief_trains_alike_and_writes_nothing(
    full_run, tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full, _, full_summary = full_run
    monkeypatch.setenv("FTC_BATCH_AUDIT", "1")
    # Without restore_best: restoring reads the chief's best checkpoint, which this worker has no copy of.
    cfg = train_config(tiny_tf, tiny_data, **RESUME, early_stopping={"restore_best": False})
    root = tmp_path / "session"
    ctx, rec = make_ctx(root, config=cfg)
    worker = Trainer(parse_config(cfg), tiny_data, ctx, record_batches=True, is_chief=False)
    assert not worker.is_chief
    summary = worker.run()
    assert rec.events == [] and rec.state == {}  # nothing journalled, published or put in state.json
    assert [p for p in root.rglob("*") if p.is_file()] == []  # no checkpoint, tensorboard, model, audit
    assert worker.batch_log == full.batch_log
    assert (summary["steps"], summary["best_step"]) == (18, full_summary["best_step"])
    assert worker.state.history == full.state.history
    chief = ck.load_arrays(full.ckpt_dir / "ckpt-18", "weights.npz")
    for var, value in zip(worker.model.variables, chief, strict=True):
        np.testing.assert_array_equal(var.numpy(), value)
