"""Shared mode: what a shared server may load — models from an allowlist (the embedded default, the
shipped examples, the session's own runs, ``RLHF_DEMO_MODELS``), rewards (``check_reward``: built-in
names, weighted sums of them, shipped or allowed classifiers, the session's own reward models; never
``py:``), and prompts or preference pairs (built-in sets, the Feedback tab, uploads, Hub dataset ids
within a size cap). The settings themselves are in ``limits.py``; no check here touches the file system
for a name the user typed, so a path that exists and one that does not read the same.
It imports neither torch nor gradio.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rlhf_demo.classroom.limits import (
    ASSETS,
    DEFAULT_MODEL,
    MAX_NAME_CHARS,
    PREFERENCE_SOURCES,
    PROMPT_SOURCES,
    UPLOAD,
    LimitError,
    Limits,
    current,
)
from rlhf_demo.runs import names

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


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
    plain = {c for c in REWARD_CHOICES if ":" not in c}
    own = {path_key(r) for r in lim.own_runs} | {path_key(Path(r) / "policy") for r in lim.own_runs}
    for term in terms:
        if term.startswith(PREFIX):
            raise LimitError(SHARED_REFUSAL)
        kind, _, rest = term.partition(":")
        if not (
            term in plain
            or (kind == "keyword" and rest)
            or (kind == "hf" and rest.split(":")[0] in shipped | set(lim.extra_models) and ":" in rest)
            or (kind == "rm" and rest.strip() and path_key(rest.strip()) in own)
            or (kind == "rm" and names.find_run(rest.strip(), lim.own_runs, local=False) is not None)
        ):
            raise LimitError(
                f"reward: this shared server builds {', '.join(sorted(plain))}, keyword:WORD, the "
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
