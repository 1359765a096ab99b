"""What a model folder holds, by its files alone: a peft adapter, a reward model (a sequence
classifier) or a plain causal LM. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path


def is_adapter_dir(path: Path) -> bool:
    """A peft adapter folder (``adapter_config.json``)."""
    return (Path(path) / "adapter_config.json").exists()


def is_reward_model(path: Path) -> bool:
    """A sequence classifier (a reward model), by its files: a SEQ_CLS adapter, or a config whose
    architectures are ``*ForSequenceClassification``."""
    path = Path(path)
    adapter = read_json(path / "adapter_config.json")
    if adapter:
        return adapter.get("task_type") == "SEQ_CLS"
    return any(str(a).endswith("ForSequenceClassification") for a in read_json(path / "config.json").get("architectures") or [])


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; {} when it is missing, unreadable or not an object."""
    try:
        out = json.loads(Path(path).read_text(encoding="utf-8"))
        return out if isinstance(out, dict) else {}
    except (OSError, ValueError):
        return {}
