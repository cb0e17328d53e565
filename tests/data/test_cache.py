"""The prepared-data cache (engine.data.prepare, engine.cache): keyed by the file's content and settings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from engine.data.prepare import PrepareOptions, prepare
from engine.data.readers import open_source
from engine.data.shards import iter_split


def write_csv(path: Path, n: int = 300, flip: int | None = None) -> Path:
    rows = ["text,label"]
    for i in range(n):
        label = "pos" if i % 3 else "neg"
        if i == flip:
            label = "neg" if label == "pos" else "pos"  # same length: pos and neg
        rows.append(f"text number {i} says {i % 7} things,{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def run(csv: Path, out: Path, **opts: Any) -> dict[str, Any]:
    return prepare(open_source(csv), PrepareOptions(out=out, shard_rows=60, **opts))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(out: Path) -> dict[str, list[tuple[int, str, int]]]:
    return {
        split: [
            (int(r), str(t), int(lab))
            for frame in iter_split(out, split)
            for r, t, lab in zip(frame["row"], frame["text"], frame["label"], strict=True)
        ]
        for split in ("train", "validation", "test")
    }


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "data").iterdir() if not p.name.startswith("."))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("FTC_CACHE_DIR", str(path))
    return path


def test_a_second_preparation_of_an_unchanged_file_comes_from_the_cache(
    tmp_path: Path, cache_dir: Path
) -> None:
    csv = write_csv(tmp_path / "in.csv")
    before = sha(csv)
    fresh = run(csv, tmp_path / "a")
    assert "cached" not in fresh and len(entries(cache_dir)) == 1
    hit = run(csv, tmp_path / "b")
    assert hit.get("cached") is True
    # The manifest is the one a fresh preparation writes; the report names its own folder.
    assert (tmp_path / "b" / "manifest.json").read_bytes() == (tmp_path / "a" / "manifest.json").read_bytes()
    assert hit["manifest"] == fresh["manifest"]
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["prepared_dir"] == str(tmp_path / "b")
    assert report["tests"] == fresh["report"]["tests"]
    assert (tmp_path / "b" / "rejects.csv").read_bytes() == (tmp_path / "a" / "rejects.csv").read_bytes()
    # Self-contained: the session's files are copies, not the cache's inodes.
    shard = next((tmp_path / "b" / "train").iterdir())
    assert os.stat(shard).st_nlink == 1
    assert sha(csv) == before  # the user's file is untouched
    # Other settings: another entry.
    assert "cached" not in run(csv, tmp_path / "c", seed=3)
    assert len(entries(cache_dir)) == 2


def test_a_changed_file_is_prepared_again_even_with_its_size_and_mtime(
    tmp_path: Path, cache_dir: Path
) -> None:
    csv = write_csv(tmp_path / "in.csv")
    first = run(csv, tmp_path / "a")
    st = csv.stat()
    write_csv(csv, flip=150)  # one label changed, same size
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    assert csv.stat().st_size == st.st_size
    again = run(csv, tmp_path / "b")
    assert "cached" not in again
    assert again["manifest"]["data_fingerprint"] != first["manifest"]["data_fingerprint"]
    assert len(entries(cache_dir)) == 2


def test_a_corrupt_entry_is_rebuilt_with_a_line(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "in.csv")
    fresh = run(csv, tmp_path / "a")
    (entry,) = entries(cache_dir)
    shard = next((entry / "train").iterdir())
    shard.write_bytes(shard.read_bytes()[:100])  # cut
    capsys.readouterr()
    again = run(csv, tmp_path / "b")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable cached preparation" in err and "rebuilding" in err
    assert "cached" not in again and again["manifest"] == fresh["manifest"]
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    assert run(csv, tmp_path / "c").get("cached") is True  # stored whole again


def test_an_unwritable_cache_warns_once_and_prepares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine import cache

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine\n")
    monkeypatch.setenv("FTC_CACHE_DIR", str(blocker))
    monkeypatch.setattr(cache, "_warned", set())
    csv = write_csv(tmp_path / "in.csv")
    capsys.readouterr()
    first = run(csv, tmp_path / "a")
    second = run(csv, tmp_path / "b")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "cannot be written" in lines[0] and "FTC_CACHE_DIR" in lines[0]
    assert first["manifest"] == second["manifest"] and "cached" not in second
    assert blocker.read_text() == "mine\n"


def test_a_killed_writers_leftovers_are_swept_on_the_next_store(tmp_path: Path, cache_dir: Path) -> None:
    (cache_dir / "data").mkdir(parents=True)
    old = cache_dir / "data" / ".abc.x1.tmp"
    (old / "train").mkdir(parents=True)
    recent = cache_dir / "data" / ".def.x2.tmp"
    recent.mkdir()
    os.utime(old, (1, 1))
    run(write_csv(tmp_path / "in.csv"), tmp_path / "a")
    assert not old.exists() and recent.exists()  # a writer may still be filling the recent one
    assert len(entries(cache_dir)) == 1
