"""Several replicas (two logical CPUs under MirroredStrategy) give one device's update, dropout included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Logical devices must be configured before TensorFlow starts, hence a fresh interpreter.
SCRIPT = """
import os, sys, tempfile
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from pathlib import Path
from tests.support.tiny import make_tiny_model, synthetic_texts
from engine.model import dropout_generators, load_model, load_tokenizer
from engine.train.optim import Stepper

folder = make_tiny_model(Path(tempfile.mkdtemp()) / "m", dropout=0.1)
tok = load_tokenizer(folder)
rows = synthetic_texts(12, ["neg", "pos"], 1)

def batch(rs):
    e = tok([t for t, _ in rs], padding=True, return_tensors="np")
    return {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"],
            "labels": np.array([lab for _, lab in rs], np.int32)}

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def pair(accum):
    with mirrored.scope():
        multi = load_model(folder, 2, seed=3)
    many = Stepper(multi, mirrored, weight_decay=0.01, clip_norm=1.0, accum_steps=accum,
                   class_weights=[1.0, 2.0])
    single = load_model(folder, 2, seed=3)
    one = Stepper(single, tf.distribute.get_strategy(), weight_decay=0.01, clip_norm=1.0,
                  accum_steps=accum, class_weights=[1.0, 2.0])
    return many, one

def compare(many, one, feed_many, feed_one, what):
    for _ in range(3):
        many.set_learning_rate(1e-3)
        one.set_learning_rate(1e-3)
        a = many.step(feed_many)
        b = one.step(feed_one)
        assert abs(a["loss"] - b["loss"]) < 1e-5, (what, a, b)
    diff = max(float(np.abs(x.numpy() - y.numpy()).max())
               for x, y in zip(many.model.variables, one.model.variables))
    assert diff < 1e-5, (what, diff)
    # Every replica's dropout generators keep the one process's state (what a checkpoint holds).
    for g, h in zip(dropout_generators(many.model), dropout_generators(one.model)):
        for local in mirrored.experimental_local_results(g.state):
            np.testing.assert_array_equal(local.numpy(), h.state.numpy())
    moved = max(float(np.abs(x.numpy() - y.numpy()).max())
                for x, y in zip(one.model.variables, load_model(folder, 2, seed=3).variables))
    assert moved > 1e-4, (what, moved)
    print(what, "replicas", mirrored.num_replicas_in_sync, "max weight difference", diff)

# Uneven splits: 7 rows are 3 + 4 on the two replicas, 5 rows 2 + 3.
many, one = pair(1)
compare(many, one, [batch(rows[:7])], [batch(rows[:7])], "fused")
many, one = pair(2)
micro = [batch(rows[:7]), batch(rows[7:])]  # each micro-batch draws its own masks, on 1 or 2 replicas
compare(many, one, micro, micro, "accumulated")
"""


@pytest.mark.slow  # ~25 s: a fresh TensorFlow with two logical devices
def test_two_replicas_with_dropout_and_accumulation_equal_one_device() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fused replicas 2" in proc.stdout and "accumulated replicas 2" in proc.stdout
