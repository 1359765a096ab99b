"""What every tab shares: the model registry (base models loaded once, read-only) and the runs folder.
The one training slot of the machine is the core's training queue (``runs.queue.QUEUE``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_demo.models.loading import REGISTRY, ModelRegistry
from rlhf_demo.runs.folder import runs_root

@dataclass
class AppContext:
    """The only state tabs share; every field is declared here."""

    registry: ModelRegistry = field(default_factory=lambda: REGISTRY)
    runs_dir: Path = field(default_factory=runs_root)
    dpo_source: Any = None
    """The DPO panel's "Preference pairs" radio (set when the Training tab is built); the Feedback tab's
    "Use for DPO" button selects "Feedback labels" in it."""
