"""Prepare a dataset out of core: validate, stratified seeded split, shuffle, HDF5 shards, manifest."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data import shardchecks, textchecks
from engine.data.errors import AllRejected, DataError
from engine.data.hashindex import HashIndex, text_hashes
from engine.data.outputs import check_out_folder, disk_full, new_build, swap_in
from engine.data.readers import DEFAULT_CHUNK_ROWS, Source, iter_chunks
from engine.data.scan import Progress, report, scan
from engine.data.shards import MANIFEST, SHARD_KEY, SPLITS, shard_relpath
from engine.data.validate import RejectsWriter, validate
from engine.fsio import atomic_write_json, fault, fsync, replace

# Rows per temporary bucket: a bucket is shuffled in memory, so this bounds memory whatever the file size.
BUCKET_ROWS = 100_000
MAX_BUCKETS = 256  # per split; keeps open files well under the usual ulimit of 1024
FINGERPRINT_BYTES = 1 << 20


@dataclass
class PrepareOptions:
    """How to split and shard; the defaults are the documented ones (70/15/15, seed 42)."""

    out: Path
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.7, "validation": 0.15, "test": 0.15})
    seed: int = 42
    shard_rows: int = 100_000
    complevel: int = 5
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    tokenizer: str | None = None
    max_length: int = 128
    # Drop rows whose normalised text repeats an earlier row (to rejects.csv as "duplicate"):
    # this is what removes train/test leakage.
    dedupe: bool = False
    # Reuse (and keep) the complete preparation of an unchanged file in the user cache (engine.cache).
    cache: bool = True

    def validate(self) -> None:
        if set(self.split) != set(SPLITS):
            raise DataError(
                f"--split: give train, validation and test fractions, got {', '.join(sorted(self.split))}"
            )
        asked = ",".join(f"{self.split[s]:g}" for s in SPLITS)
        if any(not v >= 0 for v in self.split.values()) or not math.isclose(
            sum(self.split.values()), 1.0, abs_tol=1e-6
        ):
            raise DataError(
                f"--split {asked}: fractions must be 0 or more and sum to 1, such as 0.7,0.15,0.15"
            )
        if self.split["train"] <= 0:
            raise DataError(f"--split: the train fraction must be above 0, got {self.split['train']:g}")
        if self.shard_rows < 1:
            raise DataError(f"--shard-rows {self.shard_rows}: give at least 1 row per shard")


def source_fingerprint(path: str) -> str:
    """size, mtime and a sha256 of the first and last MiB: cheap, and changes when the file does."""
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(FINGERPRINT_BYTES))
        if st.st_size > FINGERPRINT_BYTES:
            fh.seek(max(FINGERPRINT_BYTES, st.st_size - FINGERPRINT_BYTES))
            digest.update(fh.read())
    return f"size={st.st_size};mtime_ns={st.st_mtime_ns};sha256={digest.hexdigest()}"


# Bump when a preparation's content changes for the same input and settings (a new manifest field,
# another shuffle): older cache entries are then simply not found.
CACHE_FORMAT = 1
_CACHE_INDEX = "ftc-cache.json"  # in an entry only: its files and their sizes


def _cache_key(src: Source, opts: PrepareOptions) -> str | None:
    """The key of this preparation in the cache: the file's whole content and everything that shapes it.

    A content hash (not size and mtime alone): both passes read the whole file anyway, so hashing it
    costs a fraction of a preparation, and an edit that keeps size and mtime (a copy with ``cp -p``,
    ``touch -r``) is still seen. The manifest's source_fingerprint (size, mtime) is in the key too, so
    a hit's manifest is the one a fresh preparation would write. None: no cache for this one.
    """
    from engine import cache

    try:
        tokenizer = None
        if opts.tokenizer is not None:
            from engine.model import tokenizer_fingerprint

            tokenizer = tokenizer_fingerprint(opts.tokenizer)
        return cache.digest(
            CACHE_FORMAT,
            os.path.abspath(src.path),
            src.describe(),
            src.hdf_key,
            src.data_offset,
            cache.file_sha256(src.path),
            source_fingerprint(src.path),
            {k: getattr(opts, k) for k in ("split", "seed", "shard_rows", "complevel", "max_length")},
            opts.dedupe,
            tokenizer,
        )
    except Exception:
        return None  # the preparation itself says what is wrong with the file or the tokenizer


def _from_cache(key: str, build: Path, final: Path) -> dict[str, Any] | None:
    """Fill the empty ``build`` folder from the cache entry ``key``; None (build left empty) on a miss.

    The files are copied (the session's data/ stays self-contained); report.json is rewritten to
    name ``final``, the only thing in it that depends on where the preparation lives. An entry with
    a missing or cut file is dropped with a line on stderr, and the caller prepares afresh.
    """
    import json

    from engine import cache

    base = cache.folder("data")
    entry = None if base is None else base / key
    if entry is None or not (entry / _CACHE_INDEX).is_file():
        return None
    try:
        index = json.loads((entry / _CACHE_INDEX).read_text())
        for rel, size in index["files"].items():
            if (entry / rel).stat().st_size != size:
                raise ValueError(f"{rel} has {(entry / rel).stat().st_size} bytes, not {size}")
        for rel in index["files"]:
            (build / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry / rel, build / rel)
            fsync(build / rel)
        manifest = json.loads((build / MANIFEST).read_text())
        doc = json.loads((build / "report.json").read_text())
    except Exception as exc:
        cache.drop(entry, f"unreadable cached preparation ({type(exc).__name__}: {exc})")
        for child in list(build.iterdir()):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        return None
    doc["prepared_dir"] = str(final)
    atomic_write_json(build / "report.json", doc)
    atomic_write_json(build / MANIFEST, manifest)  # rewritten last, as a fresh preparation does
    return {"manifest": manifest, "report": doc, "cached": True}


def _store(key: str, build: Path) -> None:
    """Keep a copy of the complete preparation in ``build`` as the cache entry ``key``."""
    from engine import cache

    files = {str(p.relative_to(build)): p.stat().st_size for p in sorted(build.rglob("*")) if p.is_file()}
    cache.store_tree("data", key, build, extra={_CACHE_INDEX: {"version": CACHE_FORMAT, "files": files}})


def split_sizes(n: int, fractions: list[float]) -> list[int]:
    """Largest-remainder rounding: sizes sum to n and each is within one row of n * fraction."""
    raw = [n * f for f in fractions]
    sizes = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - sizes[i], reverse=True)[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def _assignments(label_counts: list[int], fractions: list[float], seed: int) -> list[np.ndarray]:
    """Per label, a seeded shuffled vector of split codes: the i-th row of that label goes to out[i]."""
    out = []
    for label_id, n in enumerate(label_counts):
        codes = np.repeat(np.arange(len(fractions), dtype=np.int8), split_sizes(n, fractions))
        np.random.default_rng([seed, label_id]).shuffle(codes)
        out.append(codes)
    return out


def prepare(src: Source, opts: PrepareOptions, on_chunk: Progress | None = None) -> dict[str, Any]:
    """Run both passes and the shard checks; write shards, manifest.json, rejects.csv and report.json.

    The preparation is built in a hidden sibling of ``opts.out`` and swapped in only when complete:
    whatever stops it (a bad byte late in the file, a full disk, ctrl+c, kill -9) leaves the
    previous preparation in ``opts.out`` whole.
    """
    opts.validate()
    final = check_out_folder(opts.out, [src.path, opts.tokenizer])
    key = _cache_key(src, opts) if opts.cache else None
    build = new_build(final)
    try:
        done = None if key is None else _from_cache(key, build, final)
        if done is None:
            done = _prepare_into(build, final, src, opts, on_chunk)
            if key is not None:
                _store(key, build)
        fault("prepare.built")
        swap_in(build, final)
    except Exception as exc:
        full = disk_full(exc, build)  # before the build folder goes and frees its space
        shutil.rmtree(build, ignore_errors=True)
        if full:
            raise DataError(
                f"no space left on device while preparing into {final}; free space there "
                "(the build needs room for the old and the new preparation at once), then prepare again"
            ) from None
        raise
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return done


def _prepare_into(
    out: Path, final: Path, src: Source, opts: PrepareOptions, on_chunk: Progress | None
) -> dict[str, Any]:
    try:
        raw = scan(
            src,
            rejects_path=out / "rejects.csv",
            tokenizer=opts.tokenizer,
            max_length=opts.max_length,
            workdir=out,
            chunk_rows=opts.chunk_rows,
            on_chunk=on_chunk,
            collect_duplicates=opts.dedupe,
        )
    except AllRejected as exc:
        # The rejects file is in the build folder, which goes; point at the command that keeps one.
        raise DataError(
            f"{exc.base}; run ftc check {src.path} --rejects PATH to see each row and its reason"
        ) from None
    kept = {n: c - raw.duplicate_label_counts.get(n, 0) for n, c in raw.label_counts.items()}
    labels = sorted(n for n, c in kept.items() if c > 0)
    if len(labels) < 2:
        raise DataError(
            f"{src.path}: every valid row has the label {labels[0]!r}; a classifier needs two or more "
            "(check --label-col)"
        )
    label2id = {name: i for i, name in enumerate(labels)}
    fractions = [opts.split[s] for s in SPLITS]
    assign = _assignments([kept[n] for n in labels], fractions, opts.seed)
    split_rows = [int(sum(int((a == code).sum()) for a in assign)) for code in range(len(SPLITS))]
    _refuse_empty_split(src.path, opts.split, split_rows)
    n_buckets = [min(MAX_BUCKETS, max(1, math.ceil(n / BUCKET_ROWS))) for n in split_rows]
    buckets = _Buckets(out / ".buckets", n_buckets)
    drop = raw.duplicate_rows if raw.duplicate_rows is not None else np.zeros(0, np.int64)
    rejects = dict(raw.rejects)
    try:
        with HashIndex(out) as index, RejectsWriter(out / "rejects.csv", append=True) as dropped:
            _spill(src, opts, label2id, assign, buckets, index, on_chunk, drop, dropped)
            buckets.close()
            kept_rows = raw.valid - dropped.count
            found = textchecks.duplicate_results(index, kept_rows, splits=True)
            leakage = [r for r in found if r.name == "leakage"]
            if dropped.count:
                by_reason = Counter(raw.rejects["by_reason"]) + dropped.by_reason
                rejects.update(
                    count=raw.rejects["count"] + dropped.count, by_reason=dict(sorted(by_reason.items()))
                )
        splits, digest = _write_shards(out, opts, buckets, labels, split_rows, on_chunk)
    finally:
        buckets.close()
        shutil.rmtree(out / ".buckets", ignore_errors=True)
    manifest = {
        "version": 1,
        "source": os.path.abspath(src.path),
        "source_fingerprint": source_fingerprint(src.path),
        "format": src.format,
        "encoding": src.encoding,
        "text_col": src.text_col,
        "label_col": src.label_col,
        "labels": labels,
        "label2id": label2id,
        "seed": opts.seed,
        "split": dict(opts.split),
        "shard_rows": opts.shard_rows,
        "dedupe": opts.dedupe,
        "splits": splits,
        "rejects": {**rejects, "path": "rejects.csv"},
        "data_fingerprint": digest,
    }
    prepared = shardchecks.prepared_results(out, manifest, on_chunk) + leakage
    doc = report(raw, prepared, prepared_dir=str(final), manifest="manifest.json")
    doc["rejects"] = manifest["rejects"]  # includes rows dropped by --dedupe in pass 2
    atomic_write_json(out / "report.json", doc)
    atomic_write_json(out / MANIFEST, manifest)  # last: its presence means the folder is complete
    return {"manifest": manifest, "report": doc}


def _refuse_empty_split(path: str, split: dict[str, float], split_rows: list[int]) -> None:
    """A split asked for (fraction > 0) that gets no row: refuse, naming it and the fractions."""
    for name, rows in zip(SPLITS, split_rows, strict=True):
        if rows == 0 and split[name] > 0:
            asked = ",".join(f"{split[s]:g}" for s in SPLITS)
            raise DataError(
                f"{path}: --split {asked} leaves the {name} split empty ({sum(split_rows):,} usable rows); "
                f"raise its fraction or add rows"
            )


class _Buckets:
    """Temporary Arrow IPC streams, one per (split, bucket); rows land in a random bucket of their split."""

    def __init__(self, root: Path, n_buckets: list[int]) -> None:
        import pyarrow as pa

        self.root, self.n_buckets = root, n_buckets
        root.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([("row", pa.int64()), ("text", pa.large_string()), ("label", pa.int32())])
        self._writers: dict[tuple[int, int], Any] = {}

    def path(self, split: int, bucket: int) -> Path:
        return self.root / f"{split}-{bucket:04d}.arrow"

    def write(self, split: int, bucket: int, rows: np.ndarray, texts: list[str], labels: np.ndarray) -> None:
        import pyarrow as pa

        key = (split, bucket)
        if key not in self._writers:
            self._writers[key] = pa.ipc.new_stream(str(self.path(split, bucket)), self.schema)
        batch = pa.record_batch(
            [pa.array(rows), pa.array(texts, pa.large_string()), pa.array(labels)], schema=self.schema
        )
        self._writers[key].write_batch(batch)

    def read(self, split: int, bucket: int) -> pd.DataFrame | None:
        import pyarrow as pa

        path = self.path(split, bucket)
        if not path.exists():
            return None
        with pa.ipc.open_stream(str(path)) as reader:
            frame = reader.read_all().to_pandas()
        path.unlink()  # free the disk as we go
        return frame

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def _spill(
    src: Source,
    opts: PrepareOptions,
    label2id: dict[str, int],
    assign: list[np.ndarray],
    buckets: _Buckets,
    index: HashIndex,
    on_chunk: Progress | None,
    drop: np.ndarray,
    dropped: RejectsWriter,
) -> None:
    """Pass 2: give each valid row its split (per-label seeded order) and a random bucket, and spill it."""
    taken = np.zeros(len(assign), dtype=np.int64)
    total = sum(len(a) for a in assign)
    # One stream per split, drawn in row order: the buckets (so the shards) do not depend on chunk size.
    rngs = [np.random.default_rng([opts.seed, 1, code]) for code in range(len(SPLITS))]
    done = 0
    for chunk in iter_chunks(src, opts.chunk_rows):
        # Same validation as pass 1, so the same rows are kept; rejects were already written then.
        good = validate(chunk, RejectsWriter(None))
        if len(drop) and good.rows:
            where = np.searchsorted(drop, good.rows)
            is_dup = drop[np.minimum(where, len(drop) - 1)] == np.asarray(good.rows)
            for i in np.flatnonzero(is_dup):
                dropped.add(good.rows[i], "duplicate", "same text as an earlier row", good.text[i])
            keep = np.flatnonzero(~is_dup)
            good.rows = [good.rows[i] for i in keep]
            good.text = [good.text[i] for i in keep]
            good.label = [good.label[i] for i in keep]
        if not good.rows:
            continue
        ids = np.fromiter((label2id[x] for x in good.label), dtype=np.int32, count=len(good.label))
        codes = np.empty(len(ids), dtype=np.int8)
        for lab in np.unique(ids):
            where = np.flatnonzero(ids == lab)
            codes[where] = assign[lab][taken[lab] : taken[lab] + len(where)]
            taken[lab] += len(where)
        rows = np.asarray(good.rows, dtype=np.int64)
        index.add(text_hashes(good.text), rows, ids, codes)
        for code in range(len(SPLITS)):
            mask = np.flatnonzero(codes == code)
            if not len(mask):
                continue
            which = rngs[code].integers(0, buckets.n_buckets[code], size=len(mask))
            for b in np.unique(which):
                sel = mask[which == b]
                buckets.write(code, int(b), rows[sel], [good.text[i] for i in sel], ids[sel])
        done += len(ids)
        if on_chunk is not None:
            on_chunk("split", done, total, done / max(1, total))


def _write_shards(
    out: Path,
    opts: PrepareOptions,
    buckets: _Buckets,
    labels: list[str],
    split_rows: list[int],
    on_chunk: Progress | None,
) -> tuple[dict[str, Any], str]:
    """Shuffle each bucket in memory and cut the concatenation into shards of exactly shard_rows rows."""
    digest = hashlib.sha256()
    splits: dict[str, Any] = {}
    total, done = sum(split_rows), 0
    for code, name in enumerate(SPLITS):
        (out / name).mkdir(parents=True, exist_ok=True)
        shards: list[dict[str, Any]] = []
        pending: list[pd.DataFrame] = []
        held = 0
        rng = np.random.default_rng([opts.seed, 2, code])
        for b in range(buckets.n_buckets[code]):
            frame = buckets.read(code, b)
            if frame is None or frame.empty:
                continue
            pending.append(frame.iloc[rng.permutation(len(frame))])
            held += len(frame)
            if held < opts.shard_rows:
                continue
            block = pd.concat(pending, ignore_index=True)
            pos = 0
            while held - pos >= opts.shard_rows:
                part = block.iloc[pos : pos + opts.shard_rows]
                shards.append(_write_one(out, name, len(shards), part, labels, opts, digest))
                pos += opts.shard_rows
                done += opts.shard_rows
                if on_chunk is not None:
                    on_chunk("shards", done, total, done / max(1, total))
            pending, held = [block.iloc[pos:]], held - pos
        if held:
            block = pd.concat(pending, ignore_index=True)
            shards.append(_write_one(out, name, len(shards), block, labels, opts, digest))
            done += held
        counts = {lab: sum(s["label_counts"][lab] for s in shards) for lab in labels}
        splits[name] = {"rows": sum(s["rows"] for s in shards), "label_counts": counts, "shards": shards}
    return splits, digest.hexdigest()


def _write_one(
    out: Path, split: str, i: int, block: pd.DataFrame, labels: list[str], opts: PrepareOptions, digest: Any
) -> dict[str, Any]:
    frame = pd.DataFrame(
        {
            "row": block["row"].to_numpy(dtype=np.int64),
            "text": block["text"].astype(str).to_numpy(dtype=object),
            "label": block["label"].to_numpy(dtype=np.int32),
        }
    )
    rel = shard_relpath(split, i)
    tmp = out / f"{rel}.tmp"
    frame.to_hdf(tmp, key=SHARD_KEY, format="table", complevel=opts.complevel, complib="blosc:lz4", mode="w")
    # The manifest written after the shards vouches for them: they must be on disk before it is.
    fsync(tmp)
    replace(tmp, out / rel)
    # Content hash (not file bytes, which carry HDF5 metadata): same data and seed give the same fingerprint.
    digest.update(rel.encode())
    digest.update(frame["row"].to_numpy().tobytes())
    digest.update(frame["label"].to_numpy().tobytes())
    digest.update("\x1f".join(frame["text"]).encode("utf-8", "surrogatepass"))
    counts = np.bincount(frame["label"].to_numpy(), minlength=len(labels))
    return {
        "path": rel,
        "rows": len(frame),
        "label_counts": {lab: int(counts[j]) for j, lab in enumerate(labels)},
    }
