"""Widgets built from a trainer config's field metadata (``rlhf_demo/config.py``), one accordion per
knob group, and the way back: widget values → ``TrainerConfig.from_inputs`` (the same path the CLI
takes), so the UI and the command line give the same config for the same inputs. Lays out only.

On a shared server (``rlhf_demo.classroom.limits``) the widgets show the limits before anyone hits them: the
time budget and the step count get the server's maximum, values are moved inside it (a preset's
"no time limit" becomes the cap, so the first click works), full fine-tuning is greyed out, and each
capped widget says why in its info line. The limits are read when the form is built."""

from __future__ import annotations

import gradio as gr

from rlhf_demo.classroom import limits
from rlhf_demo.config import show


def widget(f, value, elem_prefix: str, lim: limits.Limits | None = None):
    lim = lim or limits.current()
    meta = f.metadata
    note = lim.knob_note(f.name)
    kw = {
        "label": meta["label"] or f.name,
        "info": f"{meta['help']} {note}".strip(),
        "elem_id": f"{elem_prefix}-{f.name.replace('_', '-')}",
    }
    kind, value = meta["kind"], lim.fit(f.name, value)
    if kind == "bool":
        return gr.Checkbox(value, interactive=False if note and f.name == "full_finetune" else None, **kw)
    if kind == "choice":
        return gr.Dropdown(list(meta["choices"]), value=value, **kw)
    if kind in ("int", "float"):
        return strict(gr.Number(value, precision=0 if kind == "int" else None, **bounds(f, lim), **kw))[0]
    if kind in ("range", "floats"):
        return gr.Textbox(show(value), **kw)
    return gr.Textbox(value, **kw)


def strict(*components):
    """Answer a value a component cannot even read (text in a slider, infinity in a whole number, sent
    straight to the HTTP API) with a clear ``gr.Error`` naming the field: Gradio's own
    ComponentProcessingError reaches the client only as "the app raised an exception". Returns the
    components."""
    for component in components:
        inner, label = component.preprocess, component.label or "a value"

        def preprocess(payload, inner=inner, label=label):
            try:
                return inner(payload)
            except gr.Error:
                raise
            except Exception:  # noqa: BLE001 - any failure to read the value is the sender's
                raise gr.Error(f"{label}: {payload!r:.60} is not a valid value here") from None

        component.preprocess = preprocess
    return components


def bounds(f, lim: limits.Limits | None = None) -> dict:
    """``minimum``/``maximum`` for a number widget of knob ``f``: its own range, tightened by the limits
    (a time budget of 1…max_train_s on a shared server). Panels building a knob's widget by hand use it."""
    lim = lim or limits.current()
    lo, hi, cap = f.metadata["lo"], f.metadata["hi"], lim.knob_maximum(f.name)
    if cap is not None:
        hi = cap if hi is None else min(hi, cap)
        if f.name == "max_seconds":
            lo = 1
    return {k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None}


def config_form(cls, defaults, elem_prefix: str, skip: tuple = (), open_groups: tuple = ()) -> dict:
    """name → widget for every UI knob of ``cls`` not in ``skip``, grouped in accordions."""
    lim = limits.current()
    groups: dict[str, list] = {}
    for f in cls.knobs():
        if f.metadata["ui"] and f.name not in skip:
            groups.setdefault(f.metadata["group"] or "Settings", []).append(f)
    comps = {}
    for title, items in groups.items():
        with gr.Accordion(title, open=title in open_groups):
            for f in items:
                comps[f.name] = widget(f, getattr(defaults, f.name), elem_prefix, lim)
    return comps


def preset_values(cls, preset: str, names: list[str]) -> list:
    """The widget values of a preset, in ``names`` order (for the preset dropdown's change event),
    moved inside a shared server's limits."""
    cfg, lim = cls.preset(preset), limits.current()
    return [show(v) if isinstance(v, tuple) else v for v in (lim.fit(n, getattr(cfg, n)) for n in names)]


def config_from_form(cls, preset: str, values: dict):
    """Widget values (name → raw value) on top of a preset → a validated config (ValueError if not).
    Every widget holds a value, so an empty one is an error (not "keep the preset's"). The config alone:
    a shared server's limits are checked once the session is known (``training_run.start``)."""
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip() and cls.knob(name).metadata["kind"] != "floats"):
            raise ValueError(f"{name} is empty")
    return cls.from_inputs(preset, values).validate()
