"""The preference pairs DPO trains on: where they come from, and which of them TRL will use."""

from __future__ import annotations

import json
from pathlib import Path

from rlhf_demo.data.preferences import PreferenceError, PreferenceSet, load_preferences

MAX_PAIRS = 20_000
RUN_PAIRS = "pairs.jsonl"
"""``RUN/pairs.jsonl``: the pairs a DPO run trained on, in TRL's dataset order (pair I of the inspector)."""


def load_pairs(source: str) -> PreferenceSet:
    """``DPOConfig.preferences`` → pairs: 'shipped', 'feedback' (the Feedback tab's labels), a file or hf:DATASET."""
    if source == "feedback":
        from rlhf_demo.data.feedback import FeedbackStore

        store = FeedbackStore()
        rows = store.export_pairs()
        if not rows:
            raise PreferenceError(f"no usable human labels in {store.path} (label some pairs in the Feedback tab)")
        return PreferenceSet(rows, [], "feedback")
    return load_preferences(source)


def usable_pairs(pairs: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Pairs TRL will keep: those whose tokenised prompt is shorter than ``max_length`` (TRL drops the
    others silently, and fails obscurely when it drops them all). Returns (kept, n_dropped)."""
    kept = [p for p in pairs if len(tokenizer(p["prompt"], add_special_tokens=True)["input_ids"]) < max_length]
    return kept, len(pairs) - len(kept)


def check_pairs(pairs: list[dict], tokenizer, max_length: int) -> tuple[list[dict], str]:
    """The pairs TRL will train on (prompt/chosen/rejected only) and a note on those dropped; ValueError
    with a clear reason when none is left."""
    if not pairs:
        raise ValueError("no usable examples: the preference set is empty")
    if len(pairs) > MAX_PAIRS:
        raise ValueError(f"{len(pairs)} preference pairs; the limit is {MAX_PAIRS}")
    for i, p in enumerate(pairs, 1):
        if not all(isinstance(p.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"pair {i} lacks a text prompt/chosen/rejected")
    kept, dropped = usable_pairs(pairs, tokenizer, max_length)
    if not kept:
        raise ValueError(
            f"no usable examples: all {len(pairs)} pairs have a prompt of at least max_length = "
            f"{max_length} tokens, so no response token would be left to train on; raise max length"
        )
    note = f"{dropped} of {len(pairs)} pairs dropped: prompt ≥ max length {max_length} tokens" if dropped else ""
    return [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in kept], note


def save_run_pairs(run_dir: str | Path, rows: list[dict]) -> Path:
    """Write the training set (``check_pairs``' rows) to ``RUN/pairs.jsonl``, one pair a line, atomically."""
    path = Path(run_dir) / RUN_PAIRS
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


def load_run_pairs(run_dir: str | Path) -> list[dict]:
    """The pairs ``save_run_pairs`` wrote; ValueError in one line for a run without them."""
    path = Path(run_dir) / RUN_PAIRS
    if not path.is_file():
        raise ValueError(f"run {Path(run_dir).name!r} has no {RUN_PAIRS} (trained before DPO runs kept their pairs)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
