"""Pairs to label sampled before the lesson: a bank of the embedded default model's pairs, shipped with the
package (``rlhf_demo/assets/label_pairs.json``, made by ``scripts/make_label_pairs.py``).

A pair to label is two samples of the base model for a random training prompt, at the Feedback tab's
default setting (16 response tokens, temperature 1). Thirty people labelling while a training runs ask
for a fresh pair every ~2.5 s between them, more than two cores make beside the training (the lesson's
label p95 was 19 s, ``docs/lesson.md``). Samples drawn earlier from the same model at the same setting are
draws from the same distribution, so a shared server serves the class from the bank first
(``PairPool(ahead=...)``) and samples live only when the bank runs out or the setting differs.

The bank is used only when it was made by the model the server samples from (``model`` names the embedded
GGUF file) at the pooled setting; each server shuffles it once (a new order every lesson) and leaves out
the pairs already in the class's label file, so a restart does not hand out a labelled pair again as new.

File::

    {"model": GGUF_FILE, "response_tokens": 16, "temperature": 1.0, "seed": 0, "made": "...",
     "machine": "...", "pairs": [[prompt, response_a, response_b], ...]}
"""

from __future__ import annotations

import json
import random
from pathlib import Path

BANK = Path(__file__).resolve().parents[1] / "assets" / "label_pairs.json"
SETTING = (16, 1.0)
"""(response tokens, temperature) of the bank and of the pool drawn ahead: the Feedback tab's defaults."""


def load_bank(
    path: Path, *, model: str, response_tokens: int, temperature: float, labelled: set[tuple[str, str, str]] = frozenset(), rng=random
) -> list[tuple[str, str, str]]:
    """The bank's pairs in a random order (``rng.shuffle``), less those in ``labelled``; [] when the file is
    missing, unreadable, or was made by another model or at another setting."""
    try:
        bank = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(bank, dict) or (bank.get("model"), bank.get("response_tokens"), bank.get("temperature")) != (
        model,
        response_tokens,
        float(temperature),
    ):
        return []
    pairs = [tuple(p) for p in bank.get("pairs", []) if isinstance(p, list) and len(p) == 3 and all(isinstance(t, str) for t in p)]
    pairs = [p for p in pairs if p not in labelled]
    rng.shuffle(pairs)
    return pairs


def labelled_pairs(records: list[dict]) -> set[tuple[str, str, str]]:
    """(prompt, response_a, response_b) of every record of a label file (``FeedbackStore.records``)."""
    return {(r.get("prompt", ""), r.get("response_a", ""), r.get("response_b", "")) for r in records}
