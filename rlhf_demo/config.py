"""One convention for every trainer's settings (PPO, DPO and those that come next).

A trainer's config is a dataclass whose fields are declared with ``knob``: the default, the help
text and how the value may be set (kind, range, choices, group), all in the field's metadata. From
that metadata alone

- ``validate()`` turns nonsense into one clear message (type, range, choice), then the trainer's own
  ``check()`` adds the rules that tie fields together (the config alone: a shared server's limits are
  ``costs.check_training``'s, asked where the session is known);
- the command line builds its ``--flags`` (``rlhf_demo/cli/flags.py``) and the UI its widgets
  (``rlhf_demo/ui/config_form.py``);
- ``from_inputs(preset, inputs)`` turns what either face collected (argparse values, widget values)
  into a config with the same coercion rules, so the UI and the CLI cannot disagree.

Presets are named overrides of the defaults (``PRESETS = {"quick-cpu": {}, "no-kl": {"beta": 0.0}}``).
The same names mean the same things in every trainer: ``lr``, ``beta``, ``seed``, ``steps``,
``max_seconds``, ``kl_*`` and the evaluation schedule (``eval_every``, ``eval_at_seconds``,
``eval_at_start``).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, asdict, field, fields, replace
from typing import Any, ClassVar

KINDS = ("int", "float", "bool", "str", "choice", "floats", "range", "weights")
"""``floats``: a tuple of numbers (``"60,120"``); ``range``: a (min, max) pair of ints (``"12"`` or ``"4:16"``);
``weights``: a word → number mapping (``"great: 5, terrible: -10"``; default None = empty)."""


def knob(
    default,
    help: str,
    *,
    kind: str,
    group: str = "",
    label: str = "",
    lo=None,
    hi=None,
    choices: tuple = (),
    cli: bool = True,
    ui: bool = True,
    flag: str = "",
    slider: tuple = (),
    parse=None,
) -> Field:
    """A config field with everything the faces need in its metadata.

    ``lo``/``hi``: inclusive bounds (numbers; for ``range`` both ends); ``choices``: allowed values of
    a ``choice``; ``cli``/``ui``: whether the face offers it (every knob is settable in code);
    ``flag``: the command-line name when it is not the field's (a public flag kept, ``num-return-sequences``);
    ``slider``: ``(lo, hi, step)`` of the UI's slider, a span narrower than the valid one (the Playground's);
    ``parse``: text → value for a ``weights`` knob, when its syntax errors should say more than the kind's."""
    if kind not in KINDS:
        raise ValueError(f"unknown knob kind {kind!r}")
    meta = {
        "help": help,
        "kind": kind,
        "group": group,
        "label": label,
        "lo": lo,
        "hi": hi,
        "choices": tuple(choices),
        "cli": cli,
        "ui": ui,
        "flag": flag,
        "slider": tuple(slider),
        "parse": parse,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("knob defaults must be immutable (use a tuple)")
    return field(default=default, metadata=meta)


def _whole(name: str, value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{name} must be a whole number, got {value!r}")


def _number(name: str, value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return x


def _weights(name: str, text: str) -> dict[str, float]:
    """``"great: 5, terrible: -10"`` → ``{"great": 5.0, "terrible": -10.0}``."""
    out: dict[str, float] = {}
    for part in text.replace("\n", ",").split(","):
        if part.strip():
            word, sep, num = part.rpartition(":")
            if not sep or not word.strip():
                raise ValueError(f"{name}: write WORD:NUMBER, e.g. 'great: 5, terrible: -10' (got {part.strip()!r})")
            out[word.strip()] = _number(f"{name} of {word.strip()!r}", num)
    return out


def coerce(f: Field, value: Any):
    """One raw input (from argparse, a widget or code) → the field's type; ValueError if it cannot be."""
    kind, name = f.metadata["kind"], f.name
    if kind == "weights":  # None or text or a mapping → a new dict of finite numbers
        if isinstance(value, str):
            value = (f.metadata.get("parse") or (lambda text: _weights(name, text)))(value)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name} must be WORD:NUMBER pairs, got {value!r}")
        return {k: _number(f"{name} of {k!r}", v) for k, v in (value or {}).items()}
    if value is None:
        raise ValueError(f"{name} is empty")
    if kind == "int":
        return _whole(name, value)
    if kind == "float":
        return _number(name, value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if kind in ("str", "choice"):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text, got {value!r}")
        return value.strip()
    if kind == "floats":
        parts = [p for p in value.replace(" ", "").split(",") if p] if isinstance(value, str) else list(value)
        return tuple(_number(name, p) for p in parts)
    if kind == "range":  # "12" → (12, 12); "4:16" → (4, 16); (4, 16) as it is
        if isinstance(value, str):
            parts = value.replace(" ", "").split(":")
            if len(parts) not in (1, 2) or not all(parts):
                raise ValueError(f"{name} must be N or MIN:MAX, got {value!r}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parts = [value]
        else:
            parts = list(value)
        try:
            if len(parts) not in (1, 2):
                raise ValueError
            return _whole(name, parts[0]), _whole(name, parts[-1])
        except ValueError:
            raise ValueError(f"{name} must be N or MIN:MAX (whole numbers), got {value!r}") from None
    raise AssertionError(kind)


def show(value) -> str:
    """A value as a face shows it: (4, 16) → '4:16', (60.0, 120.0) → '60,120', {'great': 5.0} → 'great: 5'."""
    if value is None or isinstance(value, dict):
        return ", ".join(f"{k}: {v:g}" for k, v in (value or {}).items())
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}:{value[1]}" if value[0] != value[1] else str(value[0])
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return str(value)


def _bound(x) -> str:
    """A range's end as a message shows it: 4294967295 in full, 0.1 and 1e-08 short."""
    return str(x) if isinstance(x, int) else f"{x:g}"


class KnobConfig:
    """Mixin for any ``@dataclass`` config whose fields are ``knob``s (a trainer's, the decoding knobs,
    the small labs'): presets, coercion, validation, serialisation.

    ``ERROR``: the ValueError subclass its messages are raised as (``DecodingError``, ``KLInputError``);
    ``SAY``: how a message names a knob: its field ``name`` (a config, an API parameter), its widget's
    ``label`` (a tab) or its command-line ``flag`` (a config only the CLI sets)."""

    NAME: ClassVar[str] = "config"
    PRESETS: ClassVar[dict[str, dict]] = {"default": {}}
    PRESET_LABELS: ClassVar[dict[str, str]] = {}
    DEFAULT_PRESET: ClassVar[str] = "default"
    ERROR: ClassVar[type[ValueError]] = ValueError
    SAY: ClassVar[str] = "name"

    # ---------------------------------------------------------------- metadata
    @classmethod
    def title(cls) -> str:
        """What messages call this config ("PPO", "decoding")."""
        return cls.NAME

    @classmethod
    def knobs(cls) -> list[Field]:
        return [f for f in fields(cls) if "kind" in f.metadata]

    @classmethod
    def knob(cls, name: str) -> Field:
        for f in fields(cls):
            if f.name == name:
                return f
        raise ValueError(f"unknown {cls.title()} setting {name!r}")

    @classmethod
    def help(cls, name: str) -> str:
        return cls.knob(name).metadata["help"]

    @classmethod
    def say(cls, f: Field) -> str:
        """The knob as this config's messages name it (``SAY``)."""
        if cls.SAY == "label" and f.metadata["label"]:
            return f.metadata["label"]
        if cls.SAY == "flag" and f.metadata["cli"]:
            return "--" + (f.metadata["flag"] or f.name).replace("_", "-")
        return f.name

    # ---------------------------------------------------------------- presets and inputs
    @classmethod
    def preset(cls, name: str | None = None, **overrides):
        """The defaults with preset ``name`` and then ``overrides`` applied (None values are ignored).
        Not validated: call ``validate()``."""
        name = name or cls.DEFAULT_PRESET
        if name not in cls.PRESETS:
            raise cls.ERROR(f"unknown {cls.title()} preset {name!r}: choose one of {', '.join(cls.PRESETS)}")
        return cls.from_inputs(name, overrides)

    @classmethod
    def from_inputs(cls, preset: str | None, inputs: dict[str, Any]):
        """Raw inputs (argparse values, widget values or code; None = not given) on top of a preset,
        each coerced by its knob's kind. The one place where a face's values become a config."""
        name = preset or cls.DEFAULT_PRESET
        if name not in cls.PRESETS:
            raise cls.ERROR(f"unknown {cls.title()} preset {name!r}: choose one of {', '.join(cls.PRESETS)}")
        values = {**cls.PRESETS[name], **{k: v for k, v in inputs.items() if v is not None}}
        clean = {k: cls._coerce(cls.knob(k), v) for k, v in values.items()}
        return replace(cls(), **clean)

    @classmethod
    def _coerce(cls, f: Field, value):
        try:
            return coerce(f, value)
        except ValueError as exc:
            raise cls.ERROR(str(exc).replace(f.name, cls.say(f), 1)) from None

    # ---------------------------------------------------------------- validation
    def validate(self):
        """Raise ``ERROR`` with one clear message for nonsense (types, ranges, choices, the config's own
        ``check()``); return self."""
        for f in self.knobs():
            meta, name = f.metadata, self.say(f)
            value = self._coerce(f, getattr(self, f.name))  # 3 → 3.0 for a float, [4, 16] → (4, 16), ...
            setattr(self, f.name, value)
            if meta["choices"] and value not in meta["choices"]:
                raise self.ERROR(f"{name} must be one of {', '.join(map(str, meta['choices']))}; got {value!r}")
            items = value if meta["kind"] in ("floats", "range") else (value,)
            for v in items if meta["kind"] in ("int", "float", "floats", "range") else ():
                if (meta["lo"] is not None and v < meta["lo"]) or (meta["hi"] is not None and v > meta["hi"]):
                    raise self.ERROR(
                        f"{name} must be between {_bound(meta['lo'])} and {_bound(meta['hi'])}, got {show(value)}"
                        if meta["hi"] is not None
                        else f"{name} must be ≥ {_bound(meta['lo'])}, got {show(value)}"
                    )
            if meta["kind"] == "range" and value[0] > value[1]:
                raise self.ERROR(f"{name} is the range {show(value)}: its minimum is above its maximum")
            if meta["kind"] == "str" and not value:
                raise self.ERROR(f"{name} is empty")
        self.check()
        return self

    def check(self) -> None:
        """Rules that tie fields together (each config's own); raise ``ERROR``."""

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


class TrainerConfig(KnobConfig):
    """Mixin for a trainer's ``@dataclass`` config: a ``KnobConfig`` that names its algorithm, checks its
    experiment tracker and says how its batch splits over processes."""

    algo: ClassVar[str] = ""
    PRESETS: ClassVar[dict[str, dict]] = {}
    DEFAULT_PRESET: ClassVar[str] = ""

    @classmethod
    def title(cls) -> str:
        return cls.algo.upper()

    def validate(self):
        """Raise ValueError with one clear message for nonsense (types, ranges, choices, the trainer's own
        ``check()``); return self. Reads nothing of the environment: a shared server's limits are checked
        once, where the session asking is known (``costs.check_training(cfg, limits)``: the UI, the named
        API, the CLI), and the trainer that validates again trusts what it was given."""
        super().validate()
        from rlhf_demo.runs.tracking import check as check_tracker

        check_tracker(getattr(self, "report_to", "none"))  # an installed tracker, or one line now
        return self

    def batch_unit(self) -> int | None:
        """What each process's share of ``batch_size`` must be a multiple of when several processes
        train (``runs.distributed.share``); ``None``: the trainer does not split the batch itself."""
        return None

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists, plus ``algo``."""
        return {"algo": self.algo, **super().to_dict()}
