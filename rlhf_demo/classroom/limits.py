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

This is the one place that holds the limits: ``check_training`` (asked once by the page, the named API
and the CLI, where the session is known), the model loading of every tab
(``ui.context.AppContext.model``), the data loaders and the UI's widget ranges all read it.
It imports neither torch nor gradio.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlhf_demo.runs import names

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
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


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


# ----------------------------------------------------------------------------- models
def example_policies() -> list[Path]:
    """The shipped example policies (``assets/example-*/policy``)."""
    return sorted(p for p in ASSETS.glob("example-*/policy") if p.is_dir())


def path_key(path) -> str:
    """A path compared as a string only (no file-system access): absolute and normalised."""
    return os.path.normpath(os.path.abspath(str(path)))


def allowed_models(limits: Limits | None = None) -> dict[str, str]:
    """Every model name the shared server accepts, keyed as ``check_model`` compares them."""
    lim = limits or current()
    out = {DEFAULT_MODEL: DEFAULT_MODEL, **{m: m for m in lim.extra_models}}
    for pol in example_policies() + [Path(r) / "policy" for r in lim.own_runs]:
        out[path_key(pol)] = str(pol)
        out[names.run_short(pol.parent)] = str(pol)  # the short name a dropdown sends (runs/names.py)
    return out


def model_refusal(what: str = "model", limits: Limits | None = None) -> str:
    lim = limits or current()
    shown = [m for m in lim.extra_models if not m.startswith(("/", ".", "~"))]  # Hub ids; never a folder's path
    extra = "".join(f", {m!r}" for m in shown) + (", the other models in the list" if len(shown) < len(lim.extra_models) else "")
    return (
        f"{what}: this shared server offers only its own models: the base model ('default'), the shipped "
        f"example{extra}, the policies of your own runs and of the runs the teacher pinned; choose one from the list"
    )


def check_model(name, own_runs=(), limits: Limits | None = None, what: str = "model") -> str:
    """The model name to load (``""``/None → ``"default"``), or LimitError.

    Short names (``example-ppo``, ``run:NAME``: ``runs/names.py``) resolve to their policy folder: in
    shared mode only a shipped example or one of ``own_runs``, by name. Local use: any other text too (a
    folder or Hub id; loading says what is wrong with it). Shared: only ``allowed_models``, compared as
    strings, so the refusal is the same whether a path exists or not."""
    lim = limits or current()
    if own_runs:
        lim = lim.for_session((*lim.own_runs, *own_runs))
    if name is None:
        name = ""
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise LimitError(
            model_refusal(what, lim) if lim.shared else f"{what}: choose a model from the list, or type a local folder / Hub id"
        )
    name = name.strip() or DEFAULT_MODEL
    short = names.resolve_model(name, lim.own_runs, local=not lim.shared)  # example-ppo, run:NAME → its policy/
    if short is not None:
        return short
    if not lim.shared:
        return name
    allowed = allowed_models(lim)
    hit = allowed.get(name) if name in lim.extra_models or name == DEFAULT_MODEL else allowed.get(path_key(name))
    if hit is None:
        raise LimitError(model_refusal(what, lim))
    return hit


def check_reward(spec, limits: Limits | None = None) -> str:
    """A reward spec the shared server may build (an allowlist, so a new kind of reward is refused until
    it is added here): vader-positive, vader-negative, length, on-topic, repetition, ``keyword:WORD``,
    ``hf:MODEL:…`` for a shipped reward model or one in ``RLHF_DEMO_MODELS``, ``rm:RUN`` for a run of
    this session (``limits.own_runs``), and weighted sums of these (``rewards/spec.py``). No folders, no
    other Hub ids, never ``py:`` (a Python file: its own one-line refusal). Local use: anything."""
    lim = limits or current()
    if not lim.shared:
        return spec
    from rlhf_demo.rewards.functions import REWARD_CHOICES
    from rlhf_demo.rewards.python import PREFIX, SHARED_REFUSAL
    from rlhf_demo.rewards.spec import SpecError, parse_spec

    spec = spec.strip() if isinstance(spec, str) and len(spec) <= MAX_NAME_CHARS else ""
    try:
        terms = [t.name for t in parse_spec(spec)]  # a builder spec: each component is checked
    except SpecError:
        terms = [spec if PREFIX in spec else ""]
    shipped = {c.split(":")[1] for c in REWARD_CHOICES if c.startswith("hf:")}
    own = {path_key(r) for r in lim.own_runs} | {path_key(Path(r) / "policy") for r in lim.own_runs}
    for term in terms:
        if term.startswith(PREFIX):
            raise LimitError(SHARED_REFUSAL)
        kind, _, rest = term.partition(":")
        if not (
            term in ("vader-positive", "vader-negative", "length", "on-topic", "repetition")
            or (kind == "keyword" and rest)
            or (kind == "hf" and rest.split(":")[0] in shipped | set(lim.extra_models) and ":" in rest)
            or (kind == "rm" and rest.strip() and path_key(rest.strip()) in own)
            or (kind == "rm" and names.find_run(rest.strip(), lim.own_runs, local=False) is not None)
        ):
            raise LimitError(
                "reward: this shared server builds vader-positive, vader-negative, length, keyword:WORD, the "
                "listed hf: reward models and rm: reward models you trained in this session; other model "
                "folders and Hub ids are not available here"
            )
    return spec


# ----------------------------------------------------------------------------- data sources
def data_refusal(what: str, feedback: bool = False) -> str:
    fb = " the Feedback tab's labels," if feedback else ""
    return (
        f"{what}: on this shared server use the built-in set,{fb} an uploaded file or a Hub dataset id "
        "(hf:OWNER/NAME); server paths and folders are not available here"
    )


def check_hub_id(name, what: str = "dataset", feedback: bool = False) -> str:
    """``OWNER/NAME`` as the Hub spells it (no '..', no script), else LimitError. A string check only."""
    if not isinstance(name, str) or not _HUB_ID.fullmatch(name) or ".." in name or name.endswith(".py"):
        raise LimitError(data_refusal(what, feedback))
    return name


def check_source(source, what: str = "prompts", limits: Limits | None = None) -> str:
    """A prompts / preferences source the shared server accepts: a built-in name (``PROMPT_SOURCES``,
    ``PREFERENCE_SOURCES`` for what="preferences"), ``upload:NAME`` or ``hf:OWNER/NAME[:…]``; else LimitError.
    Local use: anything (a local file too)."""
    lim = limits or current()
    if not lim.shared:
        return source
    feedback = what == "preferences"
    named = PREFERENCE_SOURCES if feedback else PROMPT_SOURCES
    if source is None:
        return ""
    if not isinstance(source, str) or len(source) > MAX_NAME_CHARS:
        raise LimitError(data_refusal(what, feedback))
    s = source.strip()
    if s in named or s.startswith(UPLOAD):
        return s
    if s.startswith("hf:"):
        check_hub_id(s[3:].split(":")[0], what, feedback)
        return s
    raise LimitError(data_refusal(what, feedback))


def hub_refusal(name: str) -> str:
    return (
        f"could not load Hub dataset {name!r}: this server loads only public Hub datasets it can reach "
        "(offline, private, or no such dataset)"
    )


def hub_dataset_path(name: str, what: str = "dataset", limits: Limits | None = None, feedback: bool = False) -> str:
    """What to hand ``datasets.load_dataset`` for a Hub id: the id itself in local use; in shared mode
    ``hf://datasets/OWNER/NAME`` (remote only: never a local folder) once the id is well formed and
    its files weigh at most ``max_dataset_bytes``. Every failure reads the same line."""
    lim = limits or current()
    if not lim.shared:
        return name
    check_hub_id(name, what, feedback)
    try:
        from huggingface_hub import HfApi

        info = HfApi().dataset_info(name, files_metadata=True, timeout=20)
        size = sum(int(getattr(s, "size", 0) or 0) for s in (info.siblings or []))
    except Exception:  # noqa: BLE001 - offline, gated, missing: one line for all
        raise LimitError(hub_refusal(name)) from None
    if size > lim.max_dataset_bytes:
        raise LimitError(
            f"Hub dataset {name!r} holds {size / 1e6:.0f} MB of files; this shared server loads at most {lim.max_dataset_bytes / 1e6:g} MB"
        )
    return "hf://datasets/" + name


# ----------------------------------------------------------------------------- memory model
def logits_bytes(rows: int, positions: int, copies: float = 1.0, vocab: int = VOCAB) -> float:
    """float32 bytes of ``copies`` tensors [rows, positions, vocab]."""
    return 4.0 * copies * rows * positions * vocab


def kl_peak_bytes(rows: int, prompt_tokens: int, response_tokens: int, vocab: int = VOCAB) -> float:
    """Bytes of one scoring pass of the KL tab (``kl.analysis.logprobs_pair`` + ``per_position``) on
    ``rows`` responses: each model's forward returns logits for every position, [rows, Q + R, V], kept
    alive by the response slice; then log π/T, log π_ref and the exact KL's temporaries over the
    response: measured 2·(Q + R) + 3…3.8·R rows of V floats per response; modelled 2·(Q + R) + 4·R."""
    return logits_bytes(rows, 2 * (prompt_tokens + response_tokens) + 4 * response_tokens, vocab=vocab)


def candidates_peak_bytes(k: int, prompt_tokens: int, response_tokens: int, vocab: int = VOCAB) -> float:
    """Bytes of scoring K candidates (``theory.candidates``): the reference's logits for every position
    [K, Q + R, V], a contiguous copy of the response slice and its log-softmax [K, R, V] each
    (measured: K·(Q + 3R) rows of V floats)."""
    return logits_bytes(k, prompt_tokens + 3 * response_tokens, vocab=vocab)


def check_prompt_tokens(n_tokens: int, limits: Limits | None = None, what: str = "the prompt") -> None:
    lim = limits or current()
    if lim.shared and n_tokens > lim.max_prompt_tokens:
        raise LimitError(f"{what} has {n_tokens} tokens; this shared server takes at most {lim.max_prompt_tokens}")


def check_request(peak: float, what: str, advice: str, limits: Limits | None = None) -> None:
    """LimitError when a request would hold more than the shared server's ``max_request_bytes``."""
    lim = limits or current()
    if lim.shared and peak > lim.max_request_bytes:
        raise LimitError(
            f"{what} would hold ≈{peak / 1e9:.1f} GB of logits; this shared server allows "
            f"{lim.max_request_bytes / 1e9:g} GB per request: {advice}"
        )


# ----------------------------------------------------------------------------- trainings
def check_training(cfg, limits: Limits) -> None:
    """Raise LimitError when a training config passes its own validation but not the shared limits.

    ``limits``: those of the session asking (``AppContext.session_limits(request)``: its own runs'
    policies and reward models are allowed; the CLI passes ``current()``). Asked once, where the
    session is known (the page, the named API, the CLI); ``TrainerConfig.validate()`` never asks it."""
    lim = limits
    if not lim.shared:
        return
    algo = cfg.algo.upper()
    check_model(cfg.model, limits=lim, what="model")
    for what in ("reward", "gold_reward"):
        if getattr(cfg, what, "none") != "none":
            check_reward(getattr(cfg, what), lim)
    for what in ("prompts", "preferences"):
        if hasattr(cfg, what):
            check_source(getattr(cfg, what), what, lim)
    if getattr(cfg, "full_finetune", False) and not lim.allow_full_finetune:
        raise LimitError("full fine-tuning is off on this shared server (LoRA only)")
    if getattr(cfg, "report_to", "none") != "none":
        raise LimitError("experiment tracking is off on this shared server: report_to must be none")
    if not cfg.max_seconds or cfg.max_seconds > lim.max_train_s:
        raise LimitError(
            f"on this shared server a training runs at most {lim.max_train_s:g} s: set max_seconds between 1 and {lim.max_train_s:g}"
        )
    if cfg.steps and cfg.steps > lim.max_steps:
        raise LimitError(f"on this shared server a training has at most {lim.max_steps} steps; got {cfg.steps}")
    from rlhf_demo.algorithms import get  # here: the algorithms' memory models use this module's helpers

    model = get(cfg.algo)
    peak = model.peak_bytes(cfg) if model.peak_bytes is not None else 0.0  # None: not modelled yet
    if peak > lim.max_tensor_bytes:
        raise LimitError(
            f"this {algo} run would hold ≈{peak / 1e9:.1f} GB of tensors; the shared server allows "
            f"{lim.max_tensor_bytes / 1e9:g} GB: lower {model.peak_advice}"
        )
