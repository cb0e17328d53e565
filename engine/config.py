"""Reading and writing a session's ``config.toml`` (the resolved run configuration)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from engine.errors import ConfigError


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; give the path of a TOML run configuration") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give the path of a TOML run configuration") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; make the file readable (chmod u+r)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); check the file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte offset {exc.start}); TOML files are UTF-8: save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({' '.join(str(exc).split())}); fix the file and try again"
        ) from None


def dump_toml(data: dict[str, Any]) -> str:
    def clean(value: Any) -> Any:
        # TOML has no null: drop unset values rather than inventing a sentinel.
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value if v is not None]
        if isinstance(value, Path):
            return str(value)
        return value

    return tomli_w.dumps(clean(data))


def job_kind(config: dict[str, Any]) -> str:
    """The job a configuration asks for: ``[job] kind``, default ``train``."""
    job = config.get("job", {})
    if not isinstance(job, dict):
        raise ConfigError('[job] must be a table, e.g. [job] kind = "train"')
    kind = job.get("kind", "train")
    if not isinstance(kind, str):
        raise ConfigError('[job] kind must be a string such as "train"')
    return kind
