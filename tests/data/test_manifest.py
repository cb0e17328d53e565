"""manifest.json has one reader: the 0.1.0 layout, a newer minor's extra keys, and a refused newer major."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.data.shards import iter_split, read_manifest
from engine.errors import DataError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "release-0.1.0" / "data"


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "data"))


def test_a_manifest_written_by_0_1_0_reads_typed_and_whole(tmp_path: Path) -> None:
    manifest, raw = read_manifest(_copy(tmp_path))
    assert manifest.labels == ["mid", "neg", "pos"]
    train = manifest.splits["train"]
    assert train.rows == sum(s.rows for s in train.shards) == 280
    assert raw["label2id"] == {"mid": 0, "neg": 1, "pos": 2}  # what the model does not type is kept


def test_a_newer_minor_with_keys_unknown_here_still_reads(tmp_path: Path) -> None:
    data = _copy(tmp_path)
    raw = json.loads((data / "manifest.json").read_text())
    raw["version"] = "1.4"
    raw["tokenizer_stats"] = {"p99": 31}
    raw["splits"]["train"]["shards"][0]["bytes"] = 1234
    (data / "manifest.json").write_text(json.dumps(raw))
    manifest, _ = read_manifest(data)
    assert manifest.splits["train"].shards[0].rows == 100
    assert sum(len(frame) for frame in iter_split(data, "test")) == manifest.splits["test"].rows


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"version": "2.0"}, r"manifest version '2\.0' is not supported by this ftc, which reads version 1"),
        ({"labels": []}, r"unknown manifest layout \(labels: .*\); prepare the data again"),
    ],
)
def test_a_manifest_this_release_cannot_use_is_one_clear_error(
    tmp_path: Path, change: dict[str, object], needle: str
) -> None:
    data = _copy(tmp_path)
    raw = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps({**raw, **change}))
    with pytest.raises(DataError, match=needle):
        read_manifest(data)


def test_a_missing_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no manifest; prepare the data first \(ftc prepare DATA --out "):
        read_manifest(tmp_path)
