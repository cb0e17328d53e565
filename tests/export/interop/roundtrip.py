"""Run in the interop venv (transformers>=5, CPU torch): load each hf export and compute its logits.

``python roundtrip.py JOB.json``: JOB has "texts", "max_length" and "exports" (a list of
{"dir": export folder, "out": .npz to write}). For each export, AutoTokenizer and
AutoModelForSequenceClassification load the folder as any user would; the .npz gets the
logits, the input ids and the loading report (missing, unexpected, mismatched keys). Imports
nothing of ftc, and no TensorFlow.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def run(job: dict) -> None:
    texts = job["texts"]
    for export in job["exports"]:
        tokenizer = AutoTokenizer.from_pretrained(export["dir"])
        model, info = AutoModelForSequenceClassification.from_pretrained(
            export["dir"], output_loading_info=True
        )
        model.eval()
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=job["max_length"], return_tensors="pt"
        )
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        report = {
            "class": type(model).__name__,
            "dtype": str(next(model.parameters()).dtype),
            "id2label": {str(k): v for k, v in model.config.id2label.items()},
            "loading": {k: sorted(str(x) for x in v) for k, v in info.items()},
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }
        np.savez(
            export["out"],
            logits=logits.numpy(),
            input_ids=batch["input_ids"].numpy(),
            report=np.array(json.dumps(report)),
        )


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        run(json.load(fh))
