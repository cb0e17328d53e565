"""Shards of a prediction job: ``--shard K/N``, the rows each shard owns, and what a shard records.

Shard K of N (1-based) owns whole chunks of the input, not an exact N-th of its rows: the
input's C = ceil(R / chunk_rows) chunks are split as chunks [floor((K-1)·C/N), floor(K·C/N)).
A shard's chunks are then exactly the chunks a single run reads, so its batches, and every
float it writes, are the single run's, and a merge of the shards is bit-identical to one run.
Shards of an input with fewer chunks than N are empty, and complete as soon as they start.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
# Bytes the input digest reads at each of its points: enough to tell two files apart, cheap on any size.
DIGEST_BLOCK = 1 << 20
DIGEST_POINTS = 8


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n`` (1-based)."""

    k: int
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def parse_shard(spec: str) -> Shard:
    """``"2/3"`` as Shard(2, 3); anything else is a one-line ConfigError saying what a shard looks like."""
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise ConfigError(
            f"--shard {spec!r}: is not K/N; give this process's shard and the number of shards, "
            "e.g. --shard 2/3"
        )
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise ConfigError(f"--shard {spec}: N must be at least 1 (the number of shards)")
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {spec}: K must be between 1 and {n} (shards are numbered from 1)")
    return Shard(k, n)


def shard_rows(total: int, chunk_rows: int, shard: Shard) -> tuple[int, int]:
    """The shard's rows as [start, stop) positions (0-based; data rows start+1 .. stop)."""
    chunks = -(-total // chunk_rows)
    first = (shard.k - 1) * chunks // shard.n
    last = shard.k * chunks // shard.n
    return min(first * chunk_rows, total), min(last * chunk_rows, total)


def input_digest(path: str) -> str:
    """A content identity of the input that survives a copy to another host (the mtime does not):
    its size and blocks at evenly spaced points."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        for i in range(DIGEST_POINTS):
            fh.seek(max(0, (size - DIGEST_BLOCK) * i // max(1, DIGEST_POINTS - 1)))
            digest.update(fh.read(DIGEST_BLOCK))
    return digest.hexdigest()[:32]


def shard_meta(shard: Shard, total: int, chunk_rows: int, path: str, hdf_key: str | None) -> dict[str, Any]:
    """What a shard's output records about its part (stripped again by a merge)."""
    start, stop = shard_rows(total, chunk_rows, shard)
    return {
        "k": shard.k,
        "n": shard.n,
        "start": start,
        "stop": stop,
        "total_rows": total,
        "input_digest": input_digest(path),
        "hdf_key": hdf_key,
    }


def check_same_shard(saved: dict[str, Any], shard: Shard | None, output: object) -> None:
    """A resume continues the shard the output was started as (or a whole run as a whole run)."""
    was = saved.get("shard")
    was_spec = f"{was['k']}/{was['n']}" if isinstance(was, dict) else None
    now = str(shard) if shard is not None else None
    if was_spec == now:
        return
    if was_spec is None:
        raise ConfigError(f"{output}: was started as a whole run, not a shard; resume it without --shard")
    raise ConfigError(f"{output}: is shard {was_spec} of its input; resume it with --shard {was_spec}")


def shard_command(meta: dict[str, Any], shard: Shard, output: str, *, resume: bool) -> str:
    """The exact ``ftc predict`` command that runs (or finishes) one shard of the job ``meta`` describes.

    A new shard's command spells out every setting that changes the output, so it matches the rest.
    """
    settings = meta.get("settings", {})
    inp = meta.get("input", {})
    parts = ["ftc", "predict", "--model", str(meta.get("model", {}).get("path", "M"))]
    parts += ["--input", str(inp.get("path", "FILE")), "--output", output]
    if inp.get("text_col"):
        parts += ["--text-col", str(inp["text_col"])]
    if meta.get("shard", {}).get("hdf_key"):
        parts += ["--key", str(meta["shard"]["hdf_key"])]
    if inp.get("encoding") and inp.get("format") in ("csv", "tsv", "jsonl"):
        parts += ["--encoding", str(inp["encoding"])]
    if resume:  # a resume keeps the output's own settings
        return shlex.join([*parts, "--shard", str(shard), "--resume"])
    for name in ("chunk_rows", "token_budget", "max_length"):
        if settings.get(name) is not None:
            parts += [f"--{name.replace('_', '-')}", str(settings[name])]
    if meta.get("precision", "float32") != "float32":
        parts += ["--precision", str(meta["precision"])]
    parts += ["--shard", str(shard)]
    return shlex.join(parts)
