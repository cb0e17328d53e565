"""The sessions ftc 0.1.0 wrote (tests/fixtures/release-0.1.0*), copied where a test may change them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine import protocol

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


def as_newer_minor(target: Path, added: dict[str, dict[str, Any]]) -> None:
    """Rewrite target's journal as a newer minor of this protocol would write it.

    ``added`` gives, per event type, fields that newer ftc added to its body; after each
    evaluation, a ``confusion_computed`` event (a type this ftc does not know) follows.
    """
    newer = f"{protocol.MAJOR}.{protocol.MINOR + 1}"
    lines = []
    for raw in (TRAIN_FIXTURE / "events.jsonl").read_text().splitlines():
        event = json.loads(raw)
        event["v"] = newer
        event["body"].update(added.get(event["type"], {}))
        lines.append(json.dumps(event))
        if event["type"] == "evaluation_ended":
            lines.append(json.dumps({**event, "type": "confusion_computed", "body": {"matrix": [[1]]}}))
    (target / "events.jsonl").write_text("\n".join(lines) + "\n")
