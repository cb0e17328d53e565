"""Append prediction rows to an HDF5 table (pandas 'table' format) with a durable JSON cursor beside it.

HDF5 is not crash-safe, so the table is only trusted up to the cursor: each chunk is
appended with the file opened for that append only, flushed and fsynced, and only then
is the cursor (rows written, input position, a digest of the chunk) replaced atomically.
A resume cuts rows past the cursor, checks the last chunk against its digest, and treats
a file that no longer opens as damaged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import OutputError, full_disk
from engine.fsio import atomic_write_json, fault, fsync, identity, replace
from engine.predict.source import FLAG_WIDTH

KEY = "predictions"
CURSOR_VERSION = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Space an append leaves free beyond twice the chunk's raw size: HDF5 rewrites the table's last
# partly filled chunk, grows its B-tree and writes the cursor beside it. Below that, stop cleanly
# rather than let HDF5 meet a full disk (it loses such writes without reporting them).
RESERVE_BYTES = 1 << 20
# A chunk that did not read back on a disk with less than this free was lost to the full disk.
FULL_BELOW = 256 << 10
RESUME_HINT = "ftc predict --resume with the same --model, --input and --output"


class DamagedOutput(OutputError):
    """The HDF5 file no longer opens or disagrees with its cursor (a kill in the middle of a write)."""


class DiskFull(OutputError, OSError):
    """No space left on the output's device: an OSError with errno ENOSPC and the path, one line of advice."""

    def __init__(self, path: Path, resume: str = RESUME_HINT) -> None:
        OSError.__init__(self, errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.text = f"no space left on device writing {path}; free space, then {resume}"

    def __str__(self) -> str:
        return self.text


def no_space(exc: BaseException) -> bool:
    """Whether an error (an OSError, or HDF5's own with the errno in its text) means the disk is full."""
    return full_disk(exc) is not None


def first_line(exc: BaseException) -> str:
    """One line for an exception: for HDF5's back traces the innermost cause, else the first line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if lines and lines[0] == "HDF5 error back trace":
        inside = (
            lines[1 : lines.index("End of HDF5 error back trace")]
            if "End of HDF5 error back trace" in lines
            else lines[1:]
        )
        causes = [ln for ln in inside if not ln.startswith("File ")]
        if causes:
            return causes[-1][:200]
    return lines[0][:200] if lines else type(exc).__name__


# How the output file and its table are written (a merge writes its file the same way).
STORE_OPTIONS: dict[str, Any] = {"complevel": 1, "complib": "blosc:lz4"}


def table_options(label_width: int) -> dict[str, Any]:
    """The arguments of ``HDFStore.append`` for the predictions table."""
    return {
        "format": "table",
        "index": False,
        "data_columns": ["row", "label", "label_id", "score", "flag"],
        "min_itemsize": {"label": label_width, "flag": FLAG_WIDTH},
    }


def cursor_path(output: Path) -> Path:
    return output.with_name(output.name + ".cursor.json")


def prob_column(label: str) -> str:
    return f"prob_{label}"


def read_cursor(output: Path) -> dict[str, Any] | None:
    """The output's cursor, None if there is none; a damaged one is a one-line OutputError."""
    path = cursor_path(output)
    try:
        cursor: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OutputError(
            f"{path}: cursor is not valid JSON ({first_line(exc)}); start again with --overwrite"
        ) from None
    if not isinstance(cursor, dict):
        raise OutputError(f"{path}: is not an ftc cursor (not a JSON object); start again with --overwrite")
    if cursor.get("version") != CURSOR_VERSION:
        raise OutputError(
            f"{path}: cursor version {cursor.get('version')!r} is not supported by this ftc "
            f"(it reads version {CURSOR_VERSION}); start again with --overwrite or use the ftc that wrote it"
        )
    missing = [k for k in _CURSOR_KEYS if k not in cursor]
    meta = cursor.get("meta")
    if not missing and not (isinstance(meta, dict) and all(k in meta for k in _META_KEYS)):
        missing = [f"meta.{k}" for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing or not isinstance(cursor["rows"], int) or cursor["rows"] < 0:
        what = f"no {', '.join(missing)}" if missing else f"rows {cursor['rows']!r}"
        raise OutputError(f"{path}: damaged ftc cursor ({what}); start again with --overwrite")
    return cursor


_CURSOR_KEYS = ("output", "rows", "position", "label_counts", "flag_counts", "last_chunk", "meta")
_META_KEYS = ("labels", "model", "input", "settings")


def _files_under(folder: Path) -> Iterable[Path]:
    try:
        yield from (p for p in folder.rglob("*") if p.is_file())
    except OSError:
        return


def check_not_an_input(output: Path, inputs: list[tuple[str, Path]]) -> None:
    """Refuse an output (or its cursor) that is one of the inputs: same resolved path or same inode.

    ``inputs`` are (what, path) pairs; a folder (the model) counts with every file in it, and an
    output anywhere inside it is refused too (it would change the model's files and fingerprint).
    Nothing is opened: paths are resolved and stat'ed only.
    """
    targets = [output, cursor_path(output)]
    resolved = [t.expanduser().resolve() for t in targets]
    ids = {i for t in targets if (i := identity(t)) is not None}
    for what, path in inputs:
        real = path.expanduser().resolve()
        if real.is_dir() and what == "--input":
            continue  # not a data file: the input's own check says so
        if real.is_dir():
            if any(r == real or r.is_relative_to(real) for r in resolved):
                raise OutputError(
                    f"{output}: is inside the {what} folder {real}; choose an --output outside it"
                )
            files = list(_files_under(real))
        else:
            files = [real]
        for file in files:
            if file.resolve() in resolved or (ids and identity(file) in ids):
                raise OutputError(
                    f"{output}: is the {what} file {file} (same file on disk); choose another --output"
                )


def is_ftc_output(output: Path) -> bool:
    """Whether a file is an ftc prediction output: an HDF5 table with ftc's metadata (read-only look)."""
    if not has_hdf5_signature(output):
        return False
    try:
        meta = read_metadata(output)
    except Exception:  # not ours, or damaged: either way not provably an ftc output
        return False
    return isinstance(meta, dict) and isinstance(meta.get("labels"), list)


def has_hdf5_signature(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _own_cursor(output: Path) -> dict[str, Any] | None:
    """The output's cursor if it is a valid one naming this file, else None (never raises)."""
    try:
        cursor = read_cursor(output)
    except OutputError:
        return None
    return cursor if cursor is not None and cursor.get("output") == output.name else None


def is_ours(output: Path) -> bool:
    """Whether ftc may replace or continue a file: an ftc output, or an HDF5 file its valid cursor names
    (a run killed mid-write can leave one that no longer opens)."""
    if is_ftc_output(output):
        return True
    return has_hdf5_signature(output) and _own_cursor(output) is not None


def not_ours_error(output: Path, option: str) -> OutputError:
    kind = "an HDF5 file with ftc metadata" if has_hdf5_signature(output) else "an HDF5 file"
    return OutputError(
        f"{output}: is not an ftc prediction output (not {kind}), so {option} will not touch it; "
        "delete it yourself or choose another --output"
    )


def check_target(output: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing output (the CLI calls this before starting an engine).

    --overwrite replaces only ftc's own outputs; --resume needs a valid cursor and an output
    that is ftc's (or gone, when nothing was written yet).
    """
    cursor = cursor_path(output)
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other; give one of them")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give --output a file name such as {output / 'out.h5'}")
    if not output.parent.is_dir():
        raise OutputError(f"{output.parent}: no such folder for the output; create it first")
    if not os.access(output.parent, os.W_OK):
        readonly = bool(os.statvfs(output.parent).f_flag & os.ST_RDONLY)
        why = "is on a read-only file system" if readonly else "is not writable (permission denied)"
        raise OutputError(
            f"{output.parent}: {why}, so --output cannot be written there; choose another folder"
        )
    if (resume or overwrite) and output.exists() and not os.access(output, os.W_OK):
        option = "--resume" if resume else "--overwrite"
        raise OutputError(
            f"{output}: is not writable (permission denied), so {option} cannot change it; "
            "check its permissions (ls -l, lsattr) or choose another --output"
        )
    if resume:
        if not cursor.exists():
            raise OutputError(
                f"{output}: nothing to resume (no cursor {cursor.name} next to it); run without --resume"
            )
        saved = read_cursor(output)
        assert saved is not None
        if output.exists() and not is_ours(output):
            raise not_ours_error(output, "--resume")
        if not output.exists() and int(saved.get("rows", 0)) > 0:
            raise OutputError(
                f"{output}: is gone, but its cursor {cursor.name} says {int(saved['rows']):,} rows were "
                "written; start again with --overwrite, or put the file back"
            )
        return
    if cursor.exists() and not output.exists() and not overwrite:
        raise OutputError(
            f"{cursor}: an earlier run's cursor is there (its {output.name} is not); "
            "pass --resume to continue it or --overwrite to start again"
        )
    if (output.exists() or cursor.exists()) and not overwrite:
        hint = " or --resume to continue it" if cursor.exists() else ""
        raise OutputError(f"{output}: already exists; pass --overwrite to replace it{hint}")
    if overwrite and output.exists() and not is_ours(output):
        raise not_ours_error(output, "--overwrite")


def check_same_run(saved: dict[str, Any], now: dict[str, Any], output: Path) -> None:
    """A resume must continue the same model on the same input, or the file would mix two runs.

    ``saved`` is the cursor's meta, ``now`` what this run would record; only the model's
    fingerprint, the labels (when known) and the input's identity are compared.
    """
    labels = now.get("labels")
    if saved["model"].get("fingerprint") != now["model"]["fingerprint"] or (
        labels is not None and saved["labels"] != labels
    ):
        raise OutputError(
            f"{output}: was started with another model ({saved['model'].get('path')}); "
            "resume with that model or start again with --overwrite"
        )
    same = ("size", "mtime_ns", "format", "text_col")
    if any(saved["input"].get(k) != now["input"].get(k) for k in same):
        raise OutputError(
            f"{output}: was started on another input or text column ({saved['input'].get('path')}, "
            f"{saved['input'].get('text_col')}) or the file changed since; start again with --overwrite"
        )


def frame_digest(frame: pd.DataFrame) -> str:
    """A hash of a chunk's rows as stored, to check the table's last chunk on resume."""
    digest = hashlib.sha256()
    for col in frame.columns:
        values = frame[col].to_numpy()
        if values.dtype == object:
            digest.update("\x1f".join(map(str, values)).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:32]


class PredictionWriter:
    """The output table and its cursor; ``append`` makes one chunk durable."""

    def __init__(self, output: Path, labels: list[str], cursor: dict[str, Any]) -> None:
        self.output = output
        self.labels = labels
        self.cursor = cursor
        self.label_width = max([len(x) for x in labels] + [1])
        self.notes: list[str] = []  # what a resume found and did, for the job's log
        # The table index of the first row: a shard's rows keep their position in the whole input.
        self.index_base = 0

    @property
    def rows(self) -> int:
        return int(self.cursor["rows"])

    # ------------------------------------------------------------ start / resume

    @classmethod
    def create(
        cls, output: Path, labels: list[str], meta: dict[str, Any], *, overwrite: bool
    ) -> PredictionWriter:
        check_target(output, resume=False, overwrite=overwrite)
        # The cursor goes first: a file without a cursor is never ours to continue or remove.
        cursor: dict[str, Any] = {
            "version": CURSOR_VERSION,
            "output": output.name,
            "rows": 0,
            "position": {"row": 0, "offset": None},
            "label_counts": {},
            "flag_counts": {},
            "last_chunk": None,
            "truncated": 0,
            "done": False,
            "created": time.time(),
            "meta": meta,
        }
        atomic_write_json(cursor_path(output), cursor)
        output.unlink(missing_ok=True)
        return cls(output, labels, cursor)

    @classmethod
    def resume(cls, output: Path, labels: list[str]) -> PredictionWriter:
        """Continue an output at its cursor, cutting rows past it; DamagedOutput if it cannot be trusted."""
        cursor = read_cursor(output)
        if cursor is None:
            raise OutputError(f"{output}: nothing to resume (no cursor next to it); run without --resume")
        writer = cls(output, labels, cursor)
        writer._reconcile()
        return writer

    def _reconcile(self) -> None:
        rows = self.rows
        if rows == 0:
            # Killed before the first chunk was durable: whatever is there is a partial first write.
            # Only a file that is provably ours is removed; anything else is kept aside.
            if self.output.exists():
                if is_ftc_output(self.output):
                    self.output.unlink()
                else:
                    aside = self._move_aside()
                    self.notes.append(
                        f"{self.output.name} could not be read as an ftc output; kept it as {aside.name}"
                    )
            return
        if not self.output.is_file():
            raise DamagedOutput(f"{self.output}: is missing, but its cursor says {rows:,} rows were written")
        if not has_hdf5_signature(self.output):
            raise DamagedOutput(f"{self.output}: is not an HDF5 file (its first bytes are not HDF5's)")
        last = self.cursor["last_chunk"] or {"start": 0, "digest": None}
        try:
            with pd.HDFStore(self.output, mode="a") as store:
                if KEY not in store:
                    raise DamagedOutput(f"{self.output}: has no {KEY!r} table")
                table = store.get_storer(KEY).table
                if table.nrows < rows:
                    raise DamagedOutput(f"{self.output}: holds {table.nrows} rows but its cursor says {rows}")
                if table.nrows > rows:
                    table.truncate(rows)
                tail = store.select(KEY, start=last["start"], stop=rows)
                store.flush(fsync=True)
        except DamagedOutput:
            raise
        except Exception as exc:  # PyTables raises many types for a damaged file
            raise DamagedOutput(f"{self.output}: cannot be opened ({first_line(exc)})") from None
        if frame_digest(tail) != last["digest"]:
            raise DamagedOutput(f"{self.output}: its last chunk differs from the one its cursor recorded")

    def _move_aside(self) -> Path:
        aside = self.output.with_name(f"{self.output.name}.damaged-{int(time.time())}")
        n = 1
        while aside.exists():  # never over an earlier one
            aside = self.output.with_name(f"{self.output.name}.damaged-{int(time.time())}-{n}")
            n += 1
        replace(self.output, aside)
        return aside

    def set_aside(self) -> Path | None:
        """Move a damaged output out of the way (kept, never deleted) and restart the cursor at row 0.

        The path it was moved to, or None if there was no file to move.
        """
        aside = self._move_aside() if self.output.exists() else None
        self.cursor.update(
            rows=0, position={"row": 0, "offset": None}, label_counts={}, flag_counts={}, truncated=0
        )
        self.cursor["last_chunk"] = None
        atomic_write_json(cursor_path(self.output), self.cursor)
        return aside

    # ------------------------------------------------------------ writing

    def frame(
        self, rows: list[int], probs: np.ndarray, predicted: np.ndarray, flags: list[str]
    ) -> pd.DataFrame:
        """The stored layout of one chunk; flagged rows have label '' and id -1 and NaN scores."""
        ok = np.array([not f for f in flags], dtype=bool)
        label_id = np.where(ok, predicted, -1).astype(np.int32)
        probs = np.where(ok[:, None], probs, np.nan).astype(np.float32)
        score = np.where(ok, probs[np.arange(len(rows)), np.maximum(label_id, 0)], np.nan).astype(np.float32)
        data: dict[str, Any] = {
            "row": np.asarray(rows, dtype=np.int64),
            "label": [self.labels[i] if i >= 0 else "" for i in label_id],
            "label_id": label_id,
            "score": score,
        }
        for j, name in enumerate(self.labels):
            data[prob_column(name)] = probs[:, j]
        data["flag"] = flags
        start = self.index_base + self.rows
        return pd.DataFrame(data, index=pd.RangeIndex(start, start + len(rows)))

    @property
    def truncated(self) -> int:
        return int(self.cursor.get("truncated", 0))

    def metadata(self) -> dict[str, Any]:
        """What the HDF5 file records about the run: its cursor's meta, and texts truncated so far."""
        return {**self.cursor["meta"], "truncated": self.truncated}

    def append(self, frame: pd.DataFrame, position: dict[str, Any], *, truncated: int = 0) -> None:
        """Append one chunk, make it durable, then move the cursor past it.

        ``truncated``: how many of the chunk's texts were longer than max_length. A full disk is a
        DiskFull (an OSError with errno ENOSPC) and leaves the cursor where it was, so a resume
        after freeing space cuts whatever part of the chunk HDF5 managed to write.
        """
        start = self.rows
        self._check_space(frame)
        total_truncated = self.truncated + truncated
        try:
            with warnings.catch_warnings():
                # Label names become column names; odd ones are fine for pandas but PyTables warns.
                warnings.simplefilter("ignore")
                with pd.HDFStore(self.output, mode="a", **STORE_OPTIONS) as store:
                    store.append(KEY, frame, **table_options(self.label_width))
                    # The metadata, with the truncated count up to this chunk: equal to a single run's
                    # however often the job was resumed (rows past the cursor are cut, then rewritten).
                    store.get_storer(KEY).attrs.ftc = json.dumps(
                        {**self.cursor["meta"], "truncated": total_truncated}
                    )
                    fault("predict_append")  # rows handed to HDF5, nothing flushed
                    store.flush(fsync=True)
            fsync(self.output)
        except Exception as exc:
            if no_space(exc):
                raise DiskFull(self.output, self.resume_command) from None
            raise
        self._verify(frame, start)
        fault("predict_flushed")  # rows durable, cursor not yet moved
        counts = self.cursor["label_counts"]
        for name, n in frame.loc[frame["flag"] == "", "label"].value_counts().items():
            counts[str(name)] = counts.get(str(name), 0) + int(n)
        flags = self.cursor["flag_counts"]
        for name, n in frame.loc[frame["flag"] != "", "flag"].value_counts().items():
            flags[str(name)] = flags.get(str(name), 0) + int(n)
        self.cursor.update(
            rows=start + len(frame),
            position=position,
            last_chunk={"start": start, "digest": frame_digest(frame)},
            truncated=total_truncated,
            updated=time.time(),
        )
        self._save_cursor()

    resume_command = RESUME_HINT

    def _check_space(self, frame: pd.DataFrame) -> None:
        """Stop before an append the disk cannot take: HDF5 does not report writes a full disk refused."""
        raw = sum(
            int(col.nbytes) if col.dtype != object else len(col) * 32
            for col in (frame[c].to_numpy() for c in frame)
        )
        need = 2 * raw + RESERVE_BYTES
        try:
            free = shutil.disk_usage(self.output.parent).free
        except OSError:
            return
        if free < need:
            raise DiskFull(self.output, self.resume_command)

    def _verify(self, frame: pd.DataFrame, start: int) -> None:
        """Read the chunk back: a write the disk dropped (HDF5 may not say so) must not move the cursor."""
        try:
            back = pd.read_hdf(self.output, KEY, start=start, stop=start + len(frame))
            same = frame_digest(back) == frame_digest(frame)
        except Exception as exc:
            same, why = False, first_line(exc)
        else:
            why = "its rows read back differently"
        if same:
            return
        if self._disk_nearly_full():
            raise DiskFull(self.output, self.resume_command)
        raise DamagedOutput(
            f"{self.output}: the chunk just written did not read back ({why}); {self.resume_command}"
        )

    def _disk_nearly_full(self) -> bool:
        try:
            return shutil.disk_usage(self.output.parent).free < FULL_BELOW
        except OSError:
            return False

    def _save_cursor(self) -> None:
        try:
            atomic_write_json(cursor_path(self.output), self.cursor)
        except OSError as exc:
            if no_space(exc):
                raise DiskFull(cursor_path(self.output), self.resume_command) from None
            raise

    def finish(self, summary: dict[str, Any]) -> None:
        self.cursor.update(done=True, summary=summary, updated=time.time())
        self._save_cursor()


def read_metadata(output: str | os.PathLike[str]) -> dict[str, Any]:
    """The label map, model identity and input of an output file."""
    with pd.HDFStore(output, mode="r") as store:
        meta: dict[str, Any] = json.loads(store.get_storer(KEY).attrs.ftc)
    return meta
