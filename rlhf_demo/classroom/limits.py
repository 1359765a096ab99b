"""Shared mode: the limits that keep one machine safe for a class, or for anyone on the internet.

``RLHF_DEMO_SHARED=1`` turns it on (on by default when ``SPACE_ID`` is set, i.e. on a Hugging Face
Space, and when ``RLHF_DEMO_TEACHER_KEY`` is set: a class's server); local use has no limits beyond the
configs' own ranges. In shared mode:

- models come only from an allowlist (``check_model``): the embedded default, the shipped examples,
  the policies of this session's own runs and the ids in ``RLHF_DEMO_MODELS`` (comma-separated). A
  refused name gets one line that says nothing about the server's files: the check never looks at
  the file system, so a path that exists and one that does not read the same;
- prompts and preference pairs come only from the built-in sets, the Feedback tab, uploads (the UI
  reads the file and passes ``upload:NAME``) and Hub dataset ids (``check_source``); a Hub id is
  loaded as ``hf://datasets/OWNER/NAME``, which ``datasets`` never resolves to a local folder, after
  its size is checked (``hub_dataset_path``, ``RLHF_DEMO_MAX_DATASET_MB``, default 200). A reward
  model (``hf:MODEL:LABEL``) must be a shipped choice or in ``RLHF_DEMO_MODELS`` (``check_reward``);
- every training is capped: ``RLHF_DEMO_MAX_TRAIN_S`` seconds of training (default 300), a step
  count, and the memory its tensors need (each algorithm's ``Algorithm.peak_bytes``, a model of the
  real tensors' sizes built on ``logits_bytes``, against ``RLHF_DEMO_MAX_TENSOR_GB``, default 2); full fine-tuning only with
  ``RLHF_DEMO_ALLOW_FULL_FINETUNE=1``;
- every interactive request is capped too: prompts at ``max_prompt_tokens`` tokens and the logits a
  request holds (KL tab, estimator lab, π* candidates) at ``RLHF_DEMO_MAX_REQUEST_GB`` (default 1).

This module holds the settings (``Limits``, read from the environment once by ``current()``); the
checks are by concept beside it: what may be loaded in ``allowlist.py`` (models, rewards, data
sources), what a request or a training may cost in ``costs.py`` (the memory model, ``check_request``,
``check_training``: asked once by the page, the named API and the CLI, where the session is known).
The model loading of every tab (``ui.context.AppContext.model``), the data loaders and the UI's
widget ranges all read them. It imports neither torch nor gradio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

SHARED_ENV = "RLHF_DEMO_SHARED"
MODELS_ENV = "RLHF_DEMO_MODELS"
MAX_TRAIN_S_ENV = "RLHF_DEMO_MAX_TRAIN_S"
MAX_TENSOR_GB_ENV = "RLHF_DEMO_MAX_TENSOR_GB"
MAX_REQUEST_GB_ENV = "RLHF_DEMO_MAX_REQUEST_GB"
MAX_DATASET_MB_ENV = "RLHF_DEMO_MAX_DATASET_MB"
FULL_FINETUNE_ENV = "RLHF_DEMO_ALLOW_FULL_FINETUNE"
VOCAB = 49_152
"""The default model's vocabulary: the widest axis of every big tensor (logits [rows, vocab])."""
DEFAULT_MODEL = "default"
"""The embedded model's name (``models.loading.DEFAULT_MODEL``; that module imports torch)."""
ASSETS = Path(__file__).resolve().parents[1] / "assets"
STATE_TTL_S = 1800
"""Seconds a tab's per-session ``gr.State`` lives after its last update (Gradio keeps the state of a
closed tab an hour whatever this says)."""
MAX_NAME_CHARS = 500
UPLOAD = "upload:"
PROMPT_SOURCES = ("", "builtin")
PREFERENCE_SOURCES = ("", "shipped", "default", "feedback")


class LimitError(ValueError):
    """A request the shared server refuses; the message says what is allowed."""


def _flag(name: str, default: bool = False) -> bool:
    v = os.environ.get(name)
    return default if v is None else v.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Limits:
    shared: bool = False
    max_train_s: float = 300.0
    max_steps: int = 200
    max_tensor_bytes: float = 2e9
    allow_full_finetune: bool = False
    extra_models: tuple = field(default_factory=tuple)
    max_request_bytes: float = 1e9
    """logits one interactive request may hold (KL tab, estimator lab, π* candidates)"""
    max_prompt_tokens: int = 256
    """tokens of a prompt typed into the KL and Theory tabs"""
    max_dataset_bytes: float = 200e6
    """files of a Hub dataset the server downloads"""
    own_runs: tuple = field(default_factory=tuple)
    """the run folders of the session asking (``ui.context`` fills it in): their policies are allowed models"""

    @classmethod
    def from_env(cls) -> Limits:
        shared = _flag(SHARED_ENV, default=bool(os.environ.get("SPACE_ID") or os.environ.get("RLHF_DEMO_TEACHER_KEY")))
        models = tuple(m.strip() for m in os.environ.get(MODELS_ENV, "").split(",") if m.strip())
        return cls(
            shared=shared,
            max_train_s=float(os.environ.get(MAX_TRAIN_S_ENV, 300)),
            max_tensor_bytes=float(os.environ.get(MAX_TENSOR_GB_ENV, 2)) * 1e9,
            max_request_bytes=float(os.environ.get(MAX_REQUEST_GB_ENV, 1)) * 1e9,
            max_dataset_bytes=float(os.environ.get(MAX_DATASET_MB_ENV, 200)) * 1e6,
            allow_full_finetune=_flag(FULL_FINETUNE_ENV),
            extra_models=models,
        )

    def for_session(self, runs) -> Limits:
        """These limits for a session whose own run folders are ``runs``."""
        return replace(self, own_runs=tuple(str(r) for r in runs))

    # ------------------------------------------------------------------------- what a form shows
    def knob_maximum(self, name: str):
        """The largest value a training form's widget ``name`` may take here (None: the knob's own)."""
        if not self.shared:
            return None
        return {"max_seconds": self.max_train_s, "steps": self.max_steps}.get(name)

    def knob_note(self, name: str) -> str:
        """A short line a widget shows in shared mode, so the limit is seen before it is hit."""
        if not self.shared:
            return ""
        if name == "max_seconds":
            return f"On this shared server: 1 to {self.max_train_s:g} s."
        if name == "steps":
            return f"On this shared server: at most {self.max_steps}."
        if name == "full_finetune" and not self.allow_full_finetune:
            return "Off on this shared server (LoRA only)."
        if name == "model":
            return "On this shared server: 'default', the shipped example or a policy from your own runs."
        if name == "report_to":
            return "On this shared server: none only."
        return ""

    def fit(self, name: str, value):
        """A form's value moved inside the limits (a preset's "no time limit" becomes the cap)."""
        if not self.shared:
            return value
        if name == "max_seconds":
            return self.max_train_s if not value or value > self.max_train_s else value
        if name == "steps" and value and value > self.max_steps:
            return self.max_steps
        if name == "full_finetune" and not self.allow_full_finetune:
            return False
        if name == "report_to":
            return "none"
        return value


def current() -> Limits:
    """The limits in force now (read from the environment at each call: tests and servers set it)."""
    return Limits.from_env()


def describe(limits: Limits | None = None) -> str:
    """One markdown line that says the limits of a shared server ('' in local use)."""
    lim = limits or current()
    if not lim.shared:
        return ""
    ff = "" if lim.allow_full_finetune else ", LoRA only"
    return (
        f"**Shared server:** a training runs at most {lim.max_train_s:g} s and {lim.max_steps} steps, with at most "
        f"{lim.max_tensor_bytes / 1e9:g} GB of tensors (batch × tokens){ff}; models: the base model, the shipped "
        "example and your own runs' policies."
    )
