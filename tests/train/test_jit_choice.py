"""jit_optimizer = "auto": AdamW's update is compiled with XLA only for runs long enough to pay for
the compile, from step JIT_FROM_STEP on (the first steps come sooner), and a resume keeps the choice
and the step its checkpoint trained with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.jobs.base import StopRequested
from engine.train import checkpoints as ck
from engine.train import loop
from engine.train.config import ConfigError, parse_config
from engine.train.loop import JIT_FROM_STEP, JIT_MIN_STEPS, Trainer
from tests.train.conftest import Recorder, make_ctx, train_config


def _trainer(tiny_tf: Path, tiny_data: Path, root: Path, **train: object) -> Trainer:
    cfg = train_config(tiny_tf, tiny_data, max_steps=1, **train)
    ctx, _ = make_ctx(root, config=cfg)
    return Trainer(parse_config(cfg), tiny_data, ctx)


def test_auto_compiles_the_update_for_long_runs_only(tiny_tf: Path, tiny_data: Path, tmp_path: Path) -> None:
    trainer = _trainer(tiny_tf, tiny_data, tmp_path / "s")
    assert trainer.t.jit_optimizer == "auto"  # the default
    assert trainer._jit_optimizer(JIT_MIN_STEPS - 1) is False
    assert trainer._jit_optimizer(JIT_MIN_STEPS) is True
    for setting in (True, False):  # an explicit setting is kept whatever the length
        explicit = _trainer(tiny_tf, tiny_data, tmp_path / f"s{setting}", jit_optimizer=setting)
        assert explicit._jit_optimizer(10) is setting and explicit._jit_optimizer(10_000) is setting
    with pytest.raises(ConfigError, match="jit_optimizer"):
        parse_config(train_config(tiny_tf, tiny_data, jit_optimizer="sometimes"))


@pytest.mark.parametrize(
    ("fingerprints", "expected"),
    [
        ({"jit_optimizer": True}, True),  # recorded by this release
        ({"jit_optimizer": False}, False),
        ({"config_semantic": {"train": {"jit_optimizer": True}}}, True),  # ftc 0.1.0: the config's value
    ],
)
def test_a_resume_keeps_its_checkpoints_choice(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, fingerprints: dict, expected: bool
) -> None:
    trainer = _trainer(tiny_tf, tiny_data, tmp_path / "s")
    ck.save(trainer.ckpt_dir, 4, weights=[], optimizer=[], rng=[], state={"fingerprints": fingerprints})
    trainer._resuming = True
    assert trainer._jit_optimizer(JIT_MIN_STEPS if not expected else 10) is expected
    trainer._resuming = False  # a new run decides by its length
    assert trainer._jit_optimizer(10) is False


def test_a_checkpoint_trained_with_the_other_update_is_refused(tmp_path: Path) -> None:
    new = ck.save(
        tmp_path / "a", 4, weights=[], optimizer=[], rng=[], state={"fingerprints": {"jit_optimizer": True}}
    )
    old = ck.save(
        tmp_path / "b", 4, weights=[], optimizer=[], rng=[],
        state={"fingerprints": {"config_semantic": {"train": {"jit_optimizer": False}}}},
    )  # fmt: skip
    ck.check_fingerprints(new, {"jit_optimizer": True})
    for path, saved in ((new, "true"), (old, "false")):
        flipped = saved != "true"
        with pytest.raises(
            ck.CheckpointError, match=rf"jit_optimizer changed \({saved} -> {str(flipped).lower()}\)"
        ):
            ck.check_fingerprints(path, {"jit_optimizer": flipped})


@pytest.mark.parametrize(
    ("fingerprints", "expected"),
    [
        ({"jit_optimizer": True, "jit_from_step": 7}, 7),  # recorded by this release
        ({"jit_optimizer": True}, 0),  # before the deferral: compiled from the first step
        ({"config_semantic": {"train": {"jit_optimizer": True}}}, 0),  # ftc 0.1.0
        ({}, JIT_FROM_STEP),  # a checkpoint that says nothing: as a new run
    ],
)
def test_the_compiled_update_starts_where_the_checkpoint_says(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, fingerprints: dict, expected: int
) -> None:
    trainer = _trainer(tiny_tf, tiny_data, tmp_path / "s", jit_optimizer=True)
    trainer.jit_optimizer = True
    assert trainer._jit_from_step() == JIT_FROM_STEP > 0  # a new run: the first steps come uncompiled
    ck.save(trainer.ckpt_dir, 4, weights=[], optimizer=[], rng=[], state={"fingerprints": fingerprints})
    trainer._resuming = True
    assert trainer._jit_from_step() == expected
    trainer.jit_optimizer = False
    assert trainer._jit_from_step() is None


def _run(
    root: Path, cfg: dict, *, stop_at: int | None = None, resume: bool = False
) -> tuple[Trainer, Recorder]:
    ctx, rec = make_ctx(root, resume=resume, config=cfg)
    trainer = Trainer(parse_config(cfg), Path(cfg["data"]["dir"]), ctx)
    compiled: list[tuple[int, bool]] = []

    def watch(event: object) -> None:
        if type(event).__name__ == "StepEnded":
            compiled.append((event.step, trainer.stepper.compiled_update))  # type: ignore[attr-defined]
            if event.step == stop_at:  # type: ignore[attr-defined]
                trainer.ctx.control.request_stop("test")

    rec.on_event = watch
    trainer.compiled = compiled  # type: ignore[attr-defined]
    if stop_at is None:
        trainer.run(resume=resume)
    else:
        with pytest.raises(StopRequested):
            trainer.run(resume=resume)
    return trainer, rec


@pytest.mark.parametrize("stop_at", [2, 5])  # before the switch, and after it
def test_a_run_resumed_on_either_side_of_the_switch_ends_as_uninterrupted(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    monkeypatch.setattr(loop, "JIT_FROM_STEP", 3)
    cfg = train_config(tiny_tf, tiny_data, max_steps=6, jit_optimizer=True, batch_size=8)
    whole, rec = _run(tmp_path / "whole", cfg)
    assert whole.compiled == [(s, s > 3) for s in range(1, 7)]  # type: ignore[attr-defined]
    assert any("step 4: compiling the optimizer update" in e.text for e in rec.of("LogRecorded"))
    # Said as a phase, then back to training: the console shows it, and the ETA leaves it out.
    said = [(p.phase, p.step, p.detail) for p in rec.of("PhaseChanged") if p.step >= 3]
    assert said[:2] == [("compiling", 3, "the optimizer update (XLA)"), ("training", 3, "")]
    first, _ = _run(tmp_path / "cut", cfg, stop_at=stop_at)
    monkeypatch.setattr(loop, "JIT_FROM_STEP", 50)  # a later release's default: the checkpoint's wins
    second, _ = _run(tmp_path / "cut", cfg, resume=True)
    assert second.state.fingerprints["jit_from_step"] == 3
    assert first.compiled + second.compiled == whole.compiled  # type: ignore[attr-defined]
    a = ck.load_arrays(whole.ckpt_dir / "ckpt-6", "weights.npz")
    b = ck.load_arrays(second.ckpt_dir / "ckpt-6", "weights.npz")
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) == 0.0
