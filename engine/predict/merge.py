"""``ftc predict merge``: check that shard outputs cover an input exactly once, then write one output.

Every refusal happens before anything is written and names the shard (and the command that
runs or finishes it). The merged table is copied in blocks, never whole, into a temporary
file beside the output that is renamed into place once complete; its rows, columns, dtypes,
index and metadata are those of a single run, plus a ``merged`` entry saying from what.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import OutputError
from engine.fsio import atomic_write_json, fault, fsync, identity, replace
from engine.predict.shards import Shard, shard_command, shard_rows
from engine.predict.writer import (
    CURSOR_VERSION,
    KEY,
    STORE_OPTIONS,
    check_not_an_input,
    check_target,
    cursor_path,
    frame_digest,
    read_cursor,
    table_options,
)

# Rows copied per read/append: memory stays at one block whatever the shards hold.
BLOCK_ROWS = 65_536
# What must be equal across shards for their rows to be one run's (the input's path and mtime
# may differ between hosts; its size, digest, format and columns may not).
_INPUT_KEYS = ("size", "format", "text_col", "encoding")
_SHARD_KEYS = ("n", "total_rows", "input_digest")


@dataclass
class _Part:
    path: Path
    cursor: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.cursor["meta"])

    @property
    def shard(self) -> dict[str, Any]:
        return dict(self.cursor["meta"]["shard"])

    @property
    def spec(self) -> Shard:
        return Shard(int(self.shard["k"]), int(self.shard["n"]))

    def resume(self) -> str:
        return shard_command(self.meta, self.spec, str(self.path), resume=True)


def merge_shards(
    output: str | os.PathLike[str],
    shards: Sequence[str | os.PathLike[str]],
    *,
    progress: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Merge shard outputs into ``output``; a summary (JobSummary fields) or a one-line OutputError."""
    out = Path(output).expanduser()
    paths = [Path(p).expanduser() for p in shards]
    if not paths:
        raise OutputError(
            "ftc predict merge: give the output, then every shard's output (OUT.h5 SHARD.h5...)"
        )
    _check_distinct(paths)
    check_not_an_input(out, [("shard", p) for p in paths])
    out = out.resolve()
    check_target(out, resume=False, overwrite=False)
    parts = sorted((_read(p) for p in paths), key=lambda part: part.spec.k)
    _check_same_job(parts)
    _check_cover(parts, out)
    for part in parts:
        _check_complete(part)
    return _write(out, parts, progress)


def _check_distinct(paths: list[Path]) -> None:
    seen: dict[Any, Path] = {}
    for p in paths:
        key = identity(p) or p.resolve()
        if key in seen:
            raise OutputError(f"{p}: is given twice (also as {seen[key]}); give each shard's output once")
        seen[key] = p


def _read(path: Path) -> _Part:
    cursor = read_cursor(path)
    if cursor is None:
        if not path.exists():
            raise OutputError(
                f"{path}: no such shard output (nor its cursor {cursor_path(path).name}); check the path"
            )
        raise OutputError(
            f"{path}: has no cursor {cursor_path(path).name} beside it, so it is not a shard ftc can "
            "vouch for; copy the cursor with it, or run that shard again"
        )
    if not isinstance(cursor["meta"].get("shard"), dict):
        raise OutputError(
            f"{path}: was not predicted with --shard (it is a whole output); nothing to merge it with"
        )
    return _Part(path, cursor)


def _check_same_job(parts: list[_Part]) -> None:
    """Same split, model, input and settings: otherwise the rows are not one run's."""
    ref = parts[0]
    for part in parts[1:]:
        a, b = ref.shard, part.shard
        if a["n"] != b["n"]:
            raise OutputError(
                f"{part.path}: is shard {part.spec} but {ref.path} is shard {ref.spec}; "
                "merge the shards of one split (the same N)"
            )
        differs = _differs(ref.meta, part.meta)
        if differs:
            raise OutputError(
                f"{part.path}: {differs} from {ref.path}'s, so its rows are not the same run's; "
                f"run it again like the others: {_again(ref, part.spec, part.path)}"
            )


def _differs(a: dict[str, Any], b: dict[str, Any]) -> str:
    if a["model"].get("fingerprint") != b["model"].get("fingerprint") or a["labels"] != b["labels"]:
        return (
            f"its model fingerprint {b['model'].get('fingerprint')} ({b['model'].get('path')}) differs "
            f"(not {a['model'].get('fingerprint')})"
        )
    for key in _SHARD_KEYS:
        if a["shard"].get(key) != b["shard"].get(key):
            what = "input fingerprint" if key == "input_digest" else f"input's {key.replace('_', ' ')}"
            return f"its {what} {b['shard'].get(key)} differs (not {a['shard'].get(key)})"
    for key in _INPUT_KEYS:
        if a["input"].get(key) != b["input"].get(key):
            return f"its input {key} {b['input'].get(key)!r} differs (not {a['input'].get(key)!r})"
    for key, value in a["settings"].items():
        if b["settings"].get(key) != value:
            return f"its setting {key} = {b['settings'].get(key)!r} differs (not {value!r})"
    if a.get("precision", "float32") != b.get("precision", "float32"):
        return f"its precision {b.get('precision')} differs (not {a.get('precision')})"
    return ""


def _again(ref: _Part, spec: Shard, output: Path) -> str:
    """The command that (re)runs shard ``spec`` from scratch like ``ref``, writing ``output``."""
    return shard_command(ref.meta, spec, str(output), resume=False)


def _rows_text(start: int, stop: int) -> str:
    return f"rows {start + 1:,}-{stop:,}" if stop > start else "no rows"


def _check_cover(parts: list[_Part], out: Path) -> None:
    """Each K once, each with the rows K owns, the ranges meeting end to end: every row exactly once."""
    by_k: dict[int, _Part] = {}
    ref = parts[0]
    n, total = int(ref.shard["n"]), int(ref.shard["total_rows"])
    chunk_rows = int(ref.meta["settings"]["chunk_rows"])
    for part in parts:
        k = part.spec.k
        if k in by_k:
            raise OutputError(
                f"{by_k[k].path} and {part.path}: are both shard {part.spec} "
                f"({_rows_text(part.shard['start'], part.shard['stop'])}); their rows overlap: "
                "give each shard once"
            )
        want = shard_rows(total, chunk_rows, part.spec)
        if (part.shard["start"], part.shard["stop"]) != want:
            raise OutputError(
                f"{part.path}: records {_rows_text(part.shard['start'], part.shard['stop'])} for shard "
                f"{part.spec}, which owns {_rows_text(*want)}; run it again: "
                f"{_again(ref, part.spec, part.path)}"
            )
        by_k[k] = part
    for k in range(1, n + 1):
        if k not in by_k:
            spec = Shard(k, n)
            name = _missing_name(parts, spec, out)
            raise OutputError(
                f"shard {spec} ({_rows_text(*shard_rows(total, chunk_rows, spec))} of {total:,}) is missing; "
                f"run it, then merge again with its output: {_again(ref, spec, Path(name))}"
            )
    stop = 0
    for k in range(1, n + 1):  # guaranteed by shard_rows; checked so a change there cannot lose rows
        start_k, stop_k = by_k[k].shard["start"], by_k[k].shard["stop"]
        if start_k != stop or stop_k < start_k:
            raise OutputError(
                f"{by_k[k].path}: its rows do not start where shard {k - 1}/{n}'s end; run it again"
            )
        stop = stop_k
    if stop != total:
        raise OutputError(f"the shards end at row {stop:,} of {total:,}; run the last shard again")


def _missing_name(parts: list[_Part], spec: Shard, out: Path) -> str:
    """A name for a missing shard's output, after the others' where they follow a pattern."""
    for part in parts:
        known = f"{part.spec.k}of{part.spec.n}"
        if known in part.path.name:
            return str(part.path.with_name(part.path.name.replace(known, f"{spec.k}of{spec.n}")))
    return str(parts[0].path.with_name(f"{out.stem}.part{spec.k}of{spec.n}.h5"))


def _check_complete(part: _Part) -> None:
    want = int(part.shard["stop"]) - int(part.shard["start"])
    rows = int(part.cursor["rows"])
    if not part.cursor.get("done") or rows != want:
        raise OutputError(
            f"{part.path}: shard {part.spec} is partial ({rows:,} of {want:,} rows written); "
            f"finish it, then merge again: {part.resume()}"
        )
    if want == 0:
        return
    try:
        with pd.HDFStore(part.path, mode="r") as store:
            nrows = store.get_storer(KEY).nrows if KEY in store else 0
            last = part.cursor["last_chunk"] or {"start": 0, "digest": None}
            tail = store.select(KEY, start=last["start"], stop=rows) if nrows >= rows else None
    except Exception as exc:  # a missing, truncated or foreign file: PyTables raises many types
        raise OutputError(
            f"{part.path}: cannot be read as shard {part.spec}'s table ({' '.join(str(exc).split())[:120]}); "
            f"repair it with: {part.resume()}"
        ) from None
    if nrows != rows or tail is None or frame_digest(tail) != last["digest"]:
        raise OutputError(
            f"{part.path}: its table ({nrows:,} rows) does not match its cursor ({rows:,} rows); "
            f"repair it with: {part.resume()}"
        )


def _merged_meta(parts: list[_Part]) -> dict[str, Any]:
    meta = {k: v for k, v in parts[0].meta.items() if k != "shard"}
    meta["merged"] = {"shards": len(parts), "from": [p.path.name for p in parts]}
    return meta


def _write(out: Path, parts: list[_Part], progress: Callable[[str], None]) -> dict[str, Any]:
    meta = _merged_meta(parts)
    labels = list(meta["labels"])
    total = int(parts[0].shard["total_rows"])
    if total == 0:
        raise OutputError(f"{parts[0].meta['input'].get('path')}: has no rows, so there is nothing to merge")
    truncated = sum(int(p.cursor.get("truncated", 0)) for p in parts)
    _remove_stale_temps(out)
    tmp = out.with_name(f".{out.name}.merge-{os.getpid()}.tmp")
    options = table_options(max([len(x) for x in labels] + [1]))
    written = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTables' warnings about odd label names as column names
            with pd.HDFStore(tmp, mode="w", **STORE_OPTIONS) as store:
                for part in parts:
                    rows = int(part.cursor["rows"])
                    for start in range(0, rows, BLOCK_ROWS):
                        block = pd.read_hdf(part.path, KEY, start=start, stop=min(rows, start + BLOCK_ROWS))
                        store.append(KEY, block, **options)
                        written += len(block)
                        fault("predict_merge")
                    if rows:
                        progress(f"shard {part.spec}: {rows:,} rows copied ({written:,} of {total:,})")
                store.get_storer(KEY).attrs.ftc = json.dumps({**meta, "truncated": truncated})
                store.flush(fsync=True)
        fsync(tmp)
        if written != total:
            raise OutputError(
                f"{tmp}: {written:,} rows copied, not {total:,}; the shards changed while merging"
            )
        if out.exists() or cursor_path(out).exists():
            raise OutputError(
                f"{out}: appeared while merging; it was left alone (delete it or choose another output)"
            )
        replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(cursor_path(out), _cursor(out, parts, meta, truncated))
    return {
        "rows": total,
        "output": str(out),
        "label_counts": _summed(parts, "label_counts"),
        "flag_counts": _summed(parts, "flag_counts"),
        "truncated": truncated,
        "shards_merged": len(parts),
    }


def _remove_stale_temps(out: Path) -> None:
    """Temp files of earlier merges into ``out`` whose process is gone (killed): ftc's own, never whole."""
    from engine.session import pid_alive

    for tmp in out.parent.glob(f".{out.name}.merge-*.tmp"):
        pid = tmp.name[len(f".{out.name}.merge-") : -len(".tmp")]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _summed(parts: list[_Part], key: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for name, n in part.cursor[key].items():
            total[name] = total.get(name, 0) + int(n)
    return total


def _cursor(out: Path, parts: list[_Part], meta: dict[str, Any], truncated: int) -> dict[str, Any]:
    """A finished output's cursor, as a single run leaves it: a --resume of it says it is complete."""
    last = next(p for p in reversed(parts) if int(p.cursor["rows"]) > 0)
    chunk = last.cursor["last_chunk"]
    return {
        "version": CURSOR_VERSION,
        "output": out.name,
        "rows": int(parts[0].shard["total_rows"]),
        "position": last.cursor["position"],
        "label_counts": _summed(parts, "label_counts"),
        "flag_counts": _summed(parts, "flag_counts"),
        "last_chunk": {"start": int(last.shard["start"]) + int(chunk["start"]), "digest": chunk["digest"]},
        "truncated": truncated,
        "done": True,
        "created": time.time(),
        "meta": meta,
        "summary": {"rows": int(parts[0].shard["total_rows"]), "shards_merged": len(parts)},
    }
