"""The converted-weights cache (engine.model, engine.cache): keyed by the checkpoint's content and config."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.model import load_model


def weights(model: object) -> list[np.ndarray]:
    return [v.numpy() for v in model.weights]  # type: ignore[attr-defined]


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "weights").glob("*.npz"))


def folder_hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("FTC_CACHE_DIR", str(path))
    return path


@pytest.fixture
def model_dir(tiny_pt: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_pt, tmp_path / "model"))


def test_a_hit_is_bit_identical_to_a_conversion(model_dir: Path, cache_dir: Path) -> None:
    before = folder_hashes(model_dir)
    fresh = load_model(model_dir, 3, seed=5)
    assert len(entries(cache_dir)) == 1
    stamp = entries(cache_dir)[0].stat().st_mtime_ns
    hit = load_model(model_dir, 3, seed=5)
    assert entries(cache_dir)[0].stat().st_mtime_ns == stamp  # read, not rewritten
    assert all(np.array_equal(a, b) for a, b in zip(weights(fresh), weights(hit), strict=True))
    assert hit.ftc_loading_info == fresh.ftc_loading_info
    assert sorted(hit.ftc_loading_info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    # The head is not cached: another seed gives another head over the same encoder.
    other = load_model(model_dir, 3, seed=6)
    assert len(entries(cache_dir)) == 1
    differs = [not np.array_equal(a, b) for a, b in zip(weights(fresh), weights(other), strict=True)]
    assert 0 < sum(differs) <= 2
    assert folder_hashes(model_dir) == before  # the user's model folder is untouched


def test_changed_weights_or_config_or_labels_are_a_new_entry(model_dir: Path, cache_dir: Path) -> None:
    from safetensors.numpy import load_file, save_file

    first = load_model(model_dir, 3, seed=5)
    state = load_file(str(model_dir / "model.safetensors"))
    name = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[name] = state[name] + 1.0
    save_file(state, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    changed = load_model(model_dir, 3, seed=5)
    assert len(entries(cache_dir)) == 2
    emb = next(v for v in changed.weights if "word_embeddings" in v.name).numpy()
    np.testing.assert_array_equal(emb, state[name])  # the new file's values, not the cached ones
    old = next(v for v in first.weights if "word_embeddings" in v.name).numpy()
    np.testing.assert_array_equal(emb, old + 1.0)

    config = json.loads((model_dir / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (model_dir / "config.json").write_text(json.dumps(config))
    load_model(model_dir, 3, seed=5)
    assert len(entries(cache_dir)) == 3
    load_model(model_dir, 2, seed=5)  # another head size: another entry
    assert len(entries(cache_dir)) == 4


def test_a_corrupt_entry_is_rebuilt_with_a_line(
    model_dir: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = load_model(model_dir, 3, seed=5)
    entry = entries(cache_dir)[0]
    entry.write_bytes(entry.read_bytes()[:1000])  # cut, as a full disk or a kill might leave it
    capsys.readouterr()
    again = load_model(model_dir, 3, seed=5)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable converted weights" in err and "rebuilding" in err
    assert all(np.array_equal(a, b) for a, b in zip(weights(fresh), weights(again), strict=True))
    with np.load(entries(cache_dir)[0]) as saved:  # whole again
        assert "__info__" in saved.files


def test_an_unwritable_cache_warns_once_and_loads(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine import cache

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    monkeypatch.setenv("FTC_CACHE_DIR", str(blocker))
    monkeypatch.setattr(cache, "_warned", set())
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    capsys.readouterr()
    first = load_model(model_dir, 3, seed=5)
    second = load_model(model_dir, 3, seed=5)
    lines = capsys.readouterr().err.splitlines()
    weights_lines = [line for line in lines if "weights cache" in line]
    assert len(weights_lines) == 1 and "cannot be written" in weights_lines[0]
    assert "FTC_CACHE_DIR" in weights_lines[0]
    assert all(np.array_equal(a, b) for a, b in zip(weights(first), weights(second), strict=True))
    assert blocker.read_text() == "a file where the cache folder should be\n"
