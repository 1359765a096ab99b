"""Widgets built from a trainer config's field metadata (``rlhf_demo/config.py``), one accordion per
knob group, and the way back: widget values → ``TrainerConfig.from_inputs`` (the same path the CLI
takes), so the UI and the command line give the same config for the same inputs. Lays out only."""
from __future__ import annotations

import gradio as gr

from rlhf_demo.config import show


def widget(f, value, elem_prefix: str):
    meta = f.metadata
    kw = {"label": meta["label"] or f.name, "info": meta["help"], "elem_id": f"{elem_prefix}-{f.name.replace('_', '-')}"}
    kind = meta["kind"]
    if kind == "bool":
        return gr.Checkbox(value, **kw)
    if kind == "choice":
        return gr.Dropdown(list(meta["choices"]), value=value, **kw)
    if kind in ("int", "float"):
        bounds = {k: v for k, v in (("minimum", meta["lo"]), ("maximum", meta["hi"])) if v is not None}
        return gr.Number(value, precision=0 if kind == "int" else None, **bounds, **kw)
    if kind in ("range", "floats"):
        return gr.Textbox(show(value), **kw)
    return gr.Textbox(value, **kw)


def config_form(cls, defaults, elem_prefix: str, skip: tuple = (), open_groups: tuple = ()) -> dict:
    """name → widget for every UI knob of ``cls`` not in ``skip``, grouped in accordions."""
    groups: dict[str, list] = {}
    for f in cls.knobs():
        if f.metadata["ui"] and f.name not in skip:
            groups.setdefault(f.metadata["group"] or "Settings", []).append(f)
    comps = {}
    for title, items in groups.items():
        with gr.Accordion(title, open=title in open_groups):
            for f in items:
                comps[f.name] = widget(f, getattr(defaults, f.name), elem_prefix)
    return comps


def preset_values(cls, preset: str, names: list[str]) -> list:
    """The widget values of a preset, in ``names`` order (for the preset dropdown's change event)."""
    cfg = cls.preset(preset)
    return [show(v) if isinstance(v, tuple) else v for v in (getattr(cfg, n) for n in names)]


def config_from_form(cls, preset: str, values: dict):
    """Widget values (name → raw value) on top of a preset → a validated config (ValueError if not).
    Every widget holds a value, so an empty one is an error (not "keep the preset's")."""
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip() and cls.knob(name).metadata["kind"] != "floats"):
            raise ValueError(f"{name} is empty")
    return cls.from_inputs(preset, values).validate()
