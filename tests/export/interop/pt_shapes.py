"""Run in the interop venv (transformers>=5, torch): each PyTorch class's parameter names and shapes.

``python pt_shapes.py tiny_archs.json out.json``: for each model_type's config in tiny_archs.json,
builds AutoModelForSequenceClassification in PyTorch and writes {model_type: {name: shape}} of its
state_dict (what from_pretrained expects to find in model.safetensors). Imports nothing of ftc.
"""

from __future__ import annotations

import json
import re
import sys

from transformers import AutoConfig, AutoModelForSequenceClassification


def shapes(archs: dict[str, dict[str, object]]) -> dict[str, dict[str, list[int]]]:
    result = {}
    for model_type, kwargs in sorted(archs.items()):
        config = AutoConfig.for_model(model_type, **kwargs)
        model = AutoModelForSequenceClassification.from_config(config)
        result[model_type] = {name: list(t.shape) for name, t in sorted(model.state_dict().items())}
    return result


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        archs = json.load(fh)
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        text = json.dumps(shapes(archs), indent=1, sort_keys=True)
        fh.write(re.sub(r"\[[\d,\s]*\]", lambda m: json.dumps(json.loads(m.group(0))), text) + "\n")
