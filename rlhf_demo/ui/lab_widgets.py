"""The small labs' widgets (the Playground's decoding knobs, the KL tab's estimator lab, the Theory tab's
candidates), built from their config's knob metadata (``rlhf_demo/config.py``), and the way back:
widget values → ``KnobConfig.from_inputs(...).validate()``, the path the CLI's flags take. One helper
for the three tabs, so a label, a help line or a range is written once, in the config. Lays out only.

Also the labs' shared bits: a whole number read from a widget that no config declares and the error
line a lab's status shows.
"""

from __future__ import annotations

import gradio as gr

from rlhf_demo.config import KnobConfig, show
from rlhf_demo.ui.config_form import strict

MAX_SLIDER_SPAN = 1000
"""A whole-number knob with both bounds and at most this many steps gets a slider; others a number box."""


def knob_widget(cls: type[KnobConfig], name: str, value=None, choice=gr.Radio, **extra):
    """The widget of knob ``name`` of ``cls``: label, help and range from its metadata, ``value`` (default:
    the default preset's). A slider where the knob declares one (``slider=(lo, hi, step)``) or where a
    whole number has both bounds; a number, a checkbox, ``choice`` (radio or dropdown) or a text box
    otherwise. Number widgets answer unreadable input with a clear error (``config_form.strict``)."""
    meta = cls.knob(name).metadata
    value = getattr(cls.preset(), name) if value is None else value
    kw = {"label": meta["label"] or name, "info": meta["help"], **extra}
    lo, hi, kind = meta["lo"], meta["hi"], meta["kind"]
    span = meta["slider"] or ((lo, hi, 1) if kind == "int" and lo is not None and hi is not None and hi - lo <= MAX_SLIDER_SPAN else ())
    if span:
        return strict(gr.Slider(span[0], span[1], value, step=span[2], **kw))[0]
    if kind == "choice":
        return choice(list(meta["choices"]), value=value, **kw)
    if kind == "bool":
        return gr.Checkbox(value, **kw)
    if kind in ("int", "float"):
        bounds = {k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None}
        return strict(gr.Number(value, precision=0 if kind == "int" else None, **bounds, **kw))[0]
    return gr.Textbox(show(value), **kw)


def lab_config(cls: type[KnobConfig], values: dict):
    """Widget (or API) values by knob name → a validated ``cls`` (``cls.ERROR`` naming the knob by its
    label if not). An empty value is an error, not "the default"."""
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            raise cls.ERROR(f"{cls.say(cls.knob(name))} is empty")
    return cls.from_inputs(None, values).validate()


def whole(value, what: str) -> int:
    """A whole number from a widget no config declares (ValueError naming ``what`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def error_line(exc: Exception) -> str:
    """A lab's status line for a refused request."""
    return f"**Error** ({type(exc).__name__}): {exc}"
