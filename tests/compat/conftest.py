"""The sessions ftc 0.1.0 wrote (tests/fixtures/release-0.1.0*), copied where a test may change them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRAIN_FIXTURE = FIXTURES / "release-0.1.0"
PREDICT_FIXTURE = FIXTURES / "release-0.1.0-predict"
# The fixture's session id: its folder name when 0.1.0 wrote it (the journal's envelopes carry it).
TRAIN_ID = "20261130-063456-release-0-1-0-74f4"


@pytest.fixture
def old_session(sessions_root: Path) -> Path:
    """The stopped 0.1.0 training session (step 12 of 24; checkpoints 4, 8, 12), in this test's folder."""
    target = sessions_root / TRAIN_ID
    shutil.copytree(TRAIN_FIXTURE, target)
    return target
