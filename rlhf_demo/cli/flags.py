"""Command-line flags built from a trainer config's field metadata (``rlhf_demo/config.py``), so the
CLI offers exactly the knobs the config has, with the config's own help, kinds and ranges.

Every flag defaults to None ("not given": the preset's value stands). Booleans take ``--name`` /
``--no-name``; ranges take ``N`` or ``MIN:MAX``; number lists take ``A,B,C``.
"""

from __future__ import annotations

import argparse

from rlhf_demo.config import show


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flag_of(f) -> str:
    """A knob's flag: its field's name, or the public name its metadata keeps (``--num-return-sequences``)."""
    return flag(f.metadata.get("flag") or f.name)


def _tag(cls) -> str:
    """``[PPO] `` before a trainer's help, where one flag may serve several; nothing for other configs."""
    algo = getattr(cls, "algo", "")
    return f"[{algo.upper()}] " if algo else ""


def _default(value) -> str:
    return show(value) or ("none" if value is None else repr(value))


def add_config_flags(parser: argparse.ArgumentParser, configs: list[type]) -> None:
    """One flag per knob of any of ``configs`` (a knob several share gets one flag, its help per trainer)."""
    seen: dict[str, list] = {}
    for cls in configs:
        for f in cls.knobs():
            if f.metadata["cli"]:
                seen.setdefault(f.name, []).append((cls, f))
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, owners in seen.items():
        f = owners[0][1]
        meta = f.metadata
        title = meta["group"] or "settings"
        group = groups.setdefault(title, parser.add_argument_group(title))
        help_text = " ".join(f"{_tag(c)}{g.metadata['help']} (default {_default(g.default)})" for c, g in owners)
        help_text = help_text.replace("%", "%%")
        kw: dict = {"dest": name, "default": None, "help": help_text}
        if meta.get("flag") and meta["kind"] != "bool":
            kw["metavar"] = meta["flag"].upper()
        kind = meta["kind"]
        if kind == "bool":
            group.add_argument(flag_of(f), action=argparse.BooleanOptionalAction, **kw)
            continue
        if kind == "int":
            kw["type"] = int
        elif kind == "float":
            kw["type"] = float
        elif kind == "choice":
            kw["choices"] = list(meta["choices"])
        elif kind == "range":
            kw["metavar"] = "N|MIN:MAX"
        elif kind == "floats":
            kw["metavar"] = "A,B,..."
        elif kind == "weights":
            kw["metavar"] = "WORD:X,..."
        group.add_argument(flag_of(f), **kw)


def inputs_from_args(cls, args: argparse.Namespace) -> dict:
    """The values of ``cls``'s flags (None: not given) by knob name, for ``cls.from_inputs``."""
    return {f.name: getattr(args, f.name, None) for f in cls.knobs()}


def config_from_args(cls, args: argparse.Namespace, preset: str | None = None):
    """The flags of ``cls`` that were given, on top of ``preset``: the same path as the UI
    (``TrainerConfig.from_inputs``), validated as a config (``cli/train.py`` then checks a shared server's
    limits, once). A flag given that ``cls`` does not have is an error."""
    own = {f.name for f in cls.knobs()}
    others = sorted(k for k, v in vars(args).items() if v is not None and k not in own and k in KNOB_DESTS)
    if others:
        raise ValueError(f"{', '.join(flag(k) for k in others)}: not a {cls.algo.upper()} setting")
    inputs = {name: getattr(args, name, None) for name in own}
    return cls.from_inputs(preset, inputs).validate()


KNOB_DESTS: set[str] = set()


def register(configs: list[type]) -> None:
    """Remember which argparse destinations are config knobs (to tell a foreign flag from a command's own)."""
    for cls in configs:
        KNOB_DESTS.update(f.name for f in cls.knobs())
