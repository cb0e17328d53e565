"""mixed_precision "auto" on a CPU: the bfloat16 probe's verdict, its cache, and float32 activations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine import precision
from engine.errors import FtcError


def _timer(float32_s: float, bfloat16_s: float, calls: list[int]) -> Callable[[], tuple[float, float]]:
    def timer() -> tuple[float, float]:
        calls.append(1)
        return float32_s, bfloat16_s

    return timer


@pytest.fixture
def unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/conftest.py pins the verdict for every other test; these test the probe itself.
    monkeypatch.delenv(precision.PIN_ENV, raising=False)


def test_decide_needs_bfloat16_faster_by_the_margin() -> None:
    assert precision.decide(1.0, 1.2) == "float32"  # bf16 slower (the Xeon without AMX)
    assert precision.decide(1.0, 0.9) == "float32"  # faster, but less than the margin
    assert precision.decide(1.0, 0.5) == "mixed_bfloat16"  # AMX-like
    assert precision.decide(1.0, 0.0) == "float32"  # a broken timing never picks bf16


@pytest.mark.usefixtures("unpinned")
def test_slower_bfloat16_falls_back_to_float32_and_is_cached(tmp_path: Path) -> None:
    cache, calls = tmp_path / "probe.json", []
    probe = precision.cpu_policy(timer=_timer(0.10, 0.16, calls), cache=cache, tf_version="2.x")
    assert (probe.policy, probe.source, len(calls)) == ("float32", "probe", 1)
    assert probe.speedup == pytest.approx(0.625)
    stored = json.loads(cache.read_text())
    assert stored[probe.key]["policy"] == "float32"


@pytest.mark.usefixtures("unpinned")
def test_faster_bfloat16_is_picked_and_a_cache_hit_skips_the_probe(tmp_path: Path) -> None:
    cache, calls = tmp_path / "probe.json", []
    first = precision.cpu_policy(timer=_timer(0.10, 0.04, calls), cache=cache, tf_version="2.x")
    assert first.policy == "mixed_bfloat16"
    again = precision.cpu_policy(timer=_timer(0.10, 0.50, calls), cache=cache, tf_version="2.x")
    assert (again.policy, again.source, len(calls)) == ("mixed_bfloat16", "cache", 1)
    # Another TensorFlow is another key: probed again, the first entry kept (a shared home folder).
    other = precision.cpu_policy(timer=_timer(0.10, 0.50, calls), cache=cache, tf_version="3.y")
    assert (other.policy, len(calls)) == ("float32", 2)
    assert len(json.loads(cache.read_text())) == 2


@pytest.mark.usefixtures("unpinned")
@pytest.mark.parametrize(
    "content", [b"", b"{not json", b"[1, 2]", b'{"KEY": {"policy": "fp8"}}', b"\xff\xfe"]
)
def test_a_corrupt_cache_file_is_probed_again_and_rewritten(tmp_path: Path, content: bytes) -> None:
    cache, calls = tmp_path / "probe.json", []
    key = precision.machine_key("2.x")
    cache.write_bytes(content.replace(b"KEY", key.encode()))
    probe = precision.cpu_policy(timer=_timer(0.10, 0.04, calls), cache=cache, tf_version="2.x")
    assert (probe.policy, probe.source, len(calls)) == ("mixed_bfloat16", "probe", 1)
    assert json.loads(cache.read_text())[key]["policy"] == "mixed_bfloat16"


def test_the_pin_skips_the_probe_and_a_bad_pin_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setenv(precision.PIN_ENV, "mixed_bfloat16")
    probe = precision.cpu_policy(timer=_timer(0.1, 0.5, calls), cache=tmp_path / "p.json", tf_version="2.x")
    assert (probe.policy, calls, (tmp_path / "p.json").exists()) == ("mixed_bfloat16", [], False)
    monkeypatch.setenv(precision.PIN_ENV, "bf16")
    with pytest.raises(FtcError, match="FTC_CPU_PRECISION='bf16' is not one of float32, mixed_bfloat16"):
        precision.cpu_policy(cache=tmp_path / "p.json", tf_version="2.x")


@pytest.mark.usefixtures("unpinned")
def test_auto_on_a_cpu_follows_the_cached_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    from engine.train.runtime import resolve_precision

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU decides 'auto' by its compute capability")
    monkeypatch.setenv("FTC_CACHE_DIR", str(tmp_path))
    key = precision.machine_key(tf.__version__)
    for policy in ("mixed_bfloat16", "float32"):
        entry = precision.Probe(key, 0.1, 0.05, 2.0, policy, 0.0)
        precision.write_cached(tmp_path / precision.PROBE_FILE, entry)
        assert resolve_precision("auto") == policy
    assert resolve_precision("off") == "float32"


@pytest.mark.usefixtures("unpinned")
def test_a_real_probe_is_quick_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import tensorflow as tf  # imported before the clock starts: the engine has it loaded already

    assert tf.__version__
    monkeypatch.setenv("FTC_CACHE_DIR", str(tmp_path / "cache"))
    start = time.monotonic()
    probe = precision.cpu_policy()
    spent = time.monotonic() - start
    assert probe.float32_s > 0 and probe.bfloat16_s > 0 and probe.policy in precision.POLICIES
    assert (tmp_path / "cache" / precision.PROBE_FILE).is_file()
    assert precision.cpu_policy().source == "cache"
    print(f"probe: {spent:.2f} s, bf16 {probe.speedup:.2f}x float32 -> {probe.policy}")


def test_float32_activations_compute_gelu_in_float32(tiny_tf: Path) -> None:
    import tensorflow as tf
    import tf_keras

    from engine.model import load_model

    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = load_model(tiny_tf, 3, seed=0)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    reference = load_model(tiny_tf, 3, seed=0)
    ids = tf.constant(np.random.default_rng(0).integers(5, 60, (4, 12)), tf.int32)
    before = model(input_ids=ids, training=False).logits.numpy()
    assert precision.float32_activations(model) == 2  # one per encoder layer of the tiny BERT
    assert precision.float32_activations(model) == 0  # already wrapped: never twice
    act = model.bert.encoder.layer[0].intermediate.intermediate_act_fn
    x = tf.constant(np.linspace(-4, 4, 64), tf.bfloat16)
    expected = tf.cast(tf.nn.gelu(tf.cast(x, tf.float32)), tf.bfloat16)
    assert act(x).dtype == tf.bfloat16
    np.testing.assert_array_equal(act(x).numpy(), expected.numpy())
    after = model(input_ids=ids, training=False).logits.numpy()
    exact = reference(input_ids=ids, training=False).logits.numpy()
    # Still a bfloat16 model (its matmuls round), and no further from float32 than before.
    assert np.abs(after - exact).max() <= np.abs(before - exact).max() + 0.05
    assert np.abs(after - exact).max() < 0.2


def test_auto_training_on_a_bf16_cpu_keeps_gelu_in_float32(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tensorflow as tf
    import tf_keras

    from engine.train.config import parse_config
    from engine.train.loop import Trainer
    from tests.train.conftest import make_ctx, train_config

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("on a GPU bfloat16 activations stay bfloat16")
    monkeypatch.setenv(precision.PIN_ENV, "mixed_bfloat16")  # what the probe says on an AMX machine
    cfg = train_config(tiny_tf, tiny_data, max_steps=1, mixed_precision="auto")
    ctx, _ = make_ctx(tmp_path / "session", config=cfg)
    trainer = Trainer(parse_config(cfg), tiny_data, ctx)
    try:
        trainer._build()  # what run() does first: policy, model, stepper (no training needed here)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    assert trainer.precision == "mixed_bfloat16"
    assert trainer.model.compute_dtype == "bfloat16"
    act = trainer.model.bert.encoder.layer[0].intermediate.intermediate_act_fn
    x = tf.constant(np.linspace(-4, 4, 64), tf.bfloat16)
    np.testing.assert_array_equal(
        act(x).numpy(), tf.cast(tf.nn.gelu(tf.cast(x, tf.float32)), tf.bfloat16).numpy()
    )


@pytest.mark.usefixtures("unpinned")
def test_a_resume_keeps_the_policy_auto_chose_for_its_checkpoint(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleared probe cache or another TensorFlow must not switch an exact resume's precision."""
    from engine.train import checkpoints as ck
    from engine.train.config import parse_config
    from engine.train.loop import Trainer
    from tests.train.conftest import make_ctx, train_config

    cfg = train_config(tiny_tf, tiny_data, max_steps=1, mixed_precision="auto")
    ctx, _ = make_ctx(tmp_path / "session", config=cfg)
    trainer = Trainer(parse_config(cfg), tiny_data, ctx)
    ck.save(
        trainer.ckpt_dir, 4, weights=[], optimizer=[], rng=[],
        state={"fingerprints": {"precision": "mixed_bfloat16"}},
    )  # fmt: skip
    monkeypatch.setenv(precision.PIN_ENV, "float32")  # what the probe would say now
    trainer._resuming = True
    assert trainer._resumed_precision() == "mixed_bfloat16"
    trainer._resuming = False  # a new run resolves afresh
    assert trainer._resumed_precision() is None
    off = train_config(tiny_tf, tiny_data, max_steps=1, mixed_precision="off")
    explicit = Trainer(parse_config(off), tiny_data, ctx)
    explicit._resuming = True
    assert explicit.t.mixed_precision != "auto" and explicit._resumed_precision() is None
    # A checkpoint that trained in another policy than this run's is refused, naming both.
    with pytest.raises(ck.CheckpointError, match=r"precision changed \(mixed_bfloat16 -> float32\)"):
        ck.check_fingerprints(ck.folders(trainer.ckpt_dir)[-1], {"precision": "float32"})
