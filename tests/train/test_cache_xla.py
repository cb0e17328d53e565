"""XLA's persistent compile cache in the ftc cache: where it points, and a second start compiling nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cache
from tests.conftest import REPO

# One start as the engine makes it: the XLA cache named before TensorFlow, the model, one jit step.
START = """
import sys
sys.path.insert(0, sys.argv[2])
from engine.cache import enable_xla_cache
enable_xla_cache()
import numpy as np
import tensorflow as tf
from engine.model import load_model
from engine.train.optim import Stepper
model = load_model(sys.argv[1], 2, seed=0)
stepper = Stepper(model, tf.distribute.get_strategy(), weight_decay=0.01, clip_norm=1.0, jit_optimizer=True)
batch = {"input_ids": np.ones((4, 8), np.int32), "attention_mask": np.ones((4, 8), np.int32),
         "labels": np.zeros(4, np.int32)}
print(stepper.step([batch])["loss"])
"""


def test_the_xla_cache_is_a_folder_per_tensorflow_and_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTC_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    monkeypatch.setattr(cache, "_xla_flag", None)
    path = cache.enable_xla_cache()
    assert path is not None and path.parent == tmp_path / "c" / "xla" and path.is_dir()
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={path}"
    # Called again (another load in the process) with another cache folder: ours is replaced.
    monkeypatch.setenv("FTC_CACHE_DIR", str(tmp_path / "d"))
    again = cache.enable_xla_cache()
    assert again is not None and again.parent == tmp_path / "d" / "xla"
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={again}"


def test_a_users_own_xla_cache_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = f"--tf_xla_persistent_cache_directory={tmp_path / 'mine'}"
    monkeypatch.setenv("TF_XLA_FLAGS", mine)
    monkeypatch.setattr(cache, "_xla_flag", None)
    assert cache.enable_xla_cache() is None
    assert os.environ["TF_XLA_FLAGS"] == mine


@pytest.mark.slow  # two processes with TensorFlow and an XLA compile: ~30-60 s on 2 busy cores
def test_a_second_start_compiles_no_xla_kernel(tiny_pt: Path, tmp_path: Path) -> None:
    env = {**os.environ, "FTC_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_XLA_FLAGS", None)

    def start() -> list[str]:
        subprocess.run([sys.executable, "-c", START, str(tiny_pt), str(REPO)], env=env, check=True)
        return sorted(p.name for p in (tmp_path / "cache" / "xla").rglob("*.pb"))

    first = start()  # converts the weights, compiles the update
    assert first
    assert start() == first  # reads the weights from the cache and loads every kernel
