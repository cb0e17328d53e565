"""Encoding resolution (strict by default, ``auto`` detection on a spread sample) and binary sniffing."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass

from engine.data.errors import DataError

# Sampling the start, middle and end catches files whose odd bytes only appear late
# (the seed story: "broke reading at a random point") without reading the whole file.
SAMPLE_BYTES = 64 * 1024
# Encodings where splitting lines on b"\n" is wrong; we read line by line, so refuse them clearly.
_WIDE = ("utf_16", "utf_32", "utf-16", "utf-32")


@dataclass(frozen=True)
class EncodingChoice:
    """The codec to read with, and how it was chosen (for the report)."""

    name: str
    detected: bool = False
    note: str = ""


def sample(path: str, size: int = SAMPLE_BYTES) -> bytes:
    """Beginning, middle and end of the file, each cut at line boundaries so no character is split."""
    total = os.path.getsize(path)
    with open(path, "rb") as fh:
        if total <= 3 * size:
            return fh.read()
        parts = [_whole_lines(fh.read(size), cut_start=False, cut_end=True)]
        fh.seek(total // 2)
        parts.append(_whole_lines(fh.read(size), cut_start=True, cut_end=True))
        fh.seek(total - size)
        parts.append(_whole_lines(fh.read(size), cut_start=True, cut_end=False))
    return b"\n".join(parts)


def _whole_lines(block: bytes, *, cut_start: bool, cut_end: bool) -> bytes:
    """Drop the partial lines at a block's cut edges: a multi-byte character there would be split.

    Half a UTF-8 character makes a valid UTF-8 file look like latin-1, so when a block has
    no newline to cut at (one very long line) we drop partial UTF-8 sequences at its edges.
    """
    if cut_start:
        nl = block.find(b"\n")
        block = block[nl + 1 :] if nl >= 0 else _skip_continuation(block)
    if cut_end:
        nl = block.rfind(b"\n")
        block = block[: nl + 1] if nl >= 0 else _drop_partial_tail(block)
    return block


def _skip_continuation(block: bytes) -> bytes:
    i = 0
    while i < min(3, len(block)) and 0x80 <= block[i] < 0xC0:
        i += 1
    return block[i:]


def _drop_partial_tail(block: bytes) -> bytes:
    # Look back at most 3 bytes for a lead byte whose sequence runs past the end.
    for back in range(1, min(4, len(block) + 1)):
        byte = block[-back]
        if byte < 0x80:
            return block
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return block[:-back] if need > back else block
    return block


def resolve(path: str, requested: str | None) -> EncodingChoice:
    """Turn ``--encoding`` (None = utf-8 strict, a codec name, or ``auto``) into a codec."""
    name = (requested or "utf-8").strip()
    if name.lower() != "auto":
        try:
            canonical = codecs.lookup(name).name
        except LookupError:
            raise DataError(
                f"--encoding {name}: unknown encoding; use a Python codec name such as utf-8, cp1252, "
                "latin-1, or auto to detect it"
            ) from None
        if canonical.startswith(_WIDE):
            raise DataError(
                f"{path}: {name} files are not supported; convert to UTF-8 first (iconv -f {name} -t utf-8)"
            )
        return EncodingChoice(canonical)
    data = sample(path)
    try:
        data.decode("utf-8")
        return EncodingChoice("utf-8", detected=True, note="sample is valid UTF-8")
    except UnicodeDecodeError:
        pass
    western = _western(data)
    if western is not None:
        return western
    from charset_normalizer import from_bytes  # only needed for auto; keeps startup light

    for match in from_bytes(data):
        enc = codecs.lookup(match.encoding).name
        if enc.startswith(_WIDE):
            continue
        try:
            data.decode(enc)
        except UnicodeDecodeError:
            continue
        return EncodingChoice(
            enc, detected=True, note=f"charset-normalizer on start/middle/end sample ({match.language})"
        )
    # latin-1 decodes every byte, so it is the safe last resort; say so.
    return EncodingChoice("latin-1", detected=True, note="no confident detection; latin-1 decodes any byte")


# Share of letters that may be non-ASCII in Western European text read as cp1252/latin-1 (French,
# German, Spanish run at 2-8%); Cyrillic or Greek in a single-byte code page is mostly non-ASCII.
WESTERN_NON_ASCII_LETTERS = 0.3


def _western(data: bytes) -> EncodingChoice | None:
    """cp1252 (or latin-1 when bytes cp1252 leaves undefined occur) for text that reads as Western.

    These are what real non-UTF-8 files use (Excel and Windows exports); a detector's statistics on
    a short sample otherwise pick rare code pages (cp775, cp437, mac_roman) whose text is garbage.
    """
    for name in ("cp1252", "latin-1"):
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        letters = sum(1 for ch in text if ch.isalpha())
        wide = sum(1 for ch in text if ch.isalpha() and ord(ch) > 0x7F)
        if letters and wide / letters <= WESTERN_NON_ASCII_LETTERS:
            why = "bytes 0x80-0x9f that cp1252 leaves undefined" if name == "latin-1" else "Western text"
            return EncodingChoice(codecs.lookup(name).name, detected=True, note=f"not UTF-8; reads as {why}")
        return None
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """'little-endian' or 'big-endian' when NULs sit on one side of mostly-ASCII byte pairs."""
    pairs = len(head) // 2
    if pairs < 8:
        return None
    odd = sum(1 for i in range(1, 2 * pairs, 2) if head[i] == 0)
    even = sum(1 for i in range(0, 2 * pairs, 2) if head[i] == 0)
    if odd >= 0.8 * pairs and even < 0.1 * pairs:
        return "little-endian"
    if even >= 0.8 * pairs and odd < 0.1 * pairs:
        return "big-endian"
    return None


def sniff_binary(path: str, head: bytes) -> None:
    """Refuse files that are clearly not text (NUL bytes or mostly control bytes) with where it shows."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"{path}: file is UTF-16 (with a byte-order mark); convert it to UTF-8 first "
            "(iconv -f utf-16 -t utf-8)"
        )
    order = _utf16_without_bom(head)
    if order is not None:
        codec = "utf-16le" if order == "little-endian" else "utf-16be"
        raise DataError(
            f"{path}: file is UTF-16 ({order}, no byte-order mark); convert it to UTF-8 first "
            f"(iconv -f {codec} -t utf-8)"
        )
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{path}: binary data (NUL byte at byte offset {nul}); this is not a CSV/TSV/JSONL text file, "
            "check the path or pass --format"
        )
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if head and control / len(head) > 0.05:
        raise DataError(
            f"{path}: binary data ({control} control bytes in the first {len(head)} bytes); "
            "this is not a text file, check the path or pass --format"
        )
