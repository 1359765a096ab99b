"""The training algorithms, each declared once by its own package (``rlhf_demo/<package>/algorithm.py``:
``ALGORITHM = Algorithm(...)``) and listed here in one line. The shared code asks this registry and never
compares an algorithm's name: the CLI's ``train --algo`` choices, the Training tab's sub-tabs and live
plot, the named API, the status lines, the Runs tab, the model card and the shared server's memory model.

A name means the same algorithm everywhere: ``train --algo NAME``, ``/train_start``'s ``algo``, a
config's ``algo`` and the ``algo`` a run folder's ``config.json`` records.

Trainers, plot panels and UI panels are named by dotted paths and imported when used (a trainer pulls
in torch, and TRL for DPO, GRPO and the reward model; a panel gradio), so listing the algorithms stays
cheap and the core never imports gradio.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

POLICY, REWARD_MODEL = "policy", "reward model"
"""What an algorithm trains (``Algorithm.makes``)."""


@dataclass(frozen=True)
class Algorithm:
    """Everything the shared code needs to know about one training algorithm."""

    name: str
    """The name the faces use (``--algo``, ``/train_start``); equals ``config.algo``."""
    label: str
    """Shown in the UI (the Training tab's selector, the live status line)."""
    config: type
    """Its ``TrainerConfig`` subclass (knobs, presets, ``validate()``)."""
    trainer: str
    """``"module:Class"``, imported when a trainer is made; called as
    ``Class(cfg, pairs=... | prompts=..., stop=..., progress=...)`` (see ``from_pairs``)."""
    from_pairs: bool
    """True: learns from preference pairs (given as ``pairs``); False: samples from prompts (``prompts``)."""
    makes: str = POLICY
    """``POLICY`` (a causal LM evaluated on held-out samples) or ``REWARD_MODEL`` (scores text, evaluated
    on held-out pairs; never offered as a policy)."""
    what: str = ""
    """The model card's one-line description of the trained model."""
    blurb: str = ""
    """One sentence for the Training tab's selector."""
    status: Callable[..., list[str]] | None = None
    """``status(cfg, rec, total) -> lines``: what a training record says (headline first);
    None: the generic line (step, time, ETA, loss)."""
    card_keys: tuple[str, ...] = ()
    """The record keys the model card tabulates as training curves."""
    compare_keys: tuple[tuple[str, str], ...] = ()
    """(title, record key) of its own curves on the Runs tab's comparison (held-out keys are shared)."""
    legacy_keys: tuple[tuple[str, str], ...] = ()
    """(held-out key, the name old runs of this algorithm wrote it under): read as if renamed."""
    curves: str = ""
    """``"module:NAME"`` of its live-plot panels (``[(title, [record keys])]``); '' = every policy panel."""
    bands: bool = False
    """Shade ``reward_mean ± reward_std`` in the live plot."""
    kl_budget_line: bool = False
    """Draw ``cfg.kl_budget`` on the live plot's KL panel."""
    peak_bytes: Callable[..., float] | None = None
    """``peak_bytes(cfg) -> float``: its largest tensors at once (the shared server's memory model);
    None: not modelled."""
    peak_advice: str = ""
    """What to lower when ``peak_bytes`` is over the shared server's limit."""
    symbol: str = "circle"
    """Its plotly marker on the Runs tab's reward–KL plot."""
    panel: str = ""
    """Dotted path of the UI module building its Training sub-tab (``build(ctx, demo, alg)``); '' = none."""
    inspector: str = ""
    """``"module:function"`` of its token-by-token inspector (``rlhf_demo/inspector.py``), called as
    ``function(run_dir: Path, *, step: int | None, index: int | None) -> dict`` (the JSON of
    ``python -m rlhf_demo inspect``); '' = none."""

    @property
    def is_policy(self) -> bool:
        return self.makes == POLICY

    def make_trainer(self, cfg, *, pairs=None, prompts=None, stop=None, progress=None):
        """Its trainer of ``cfg`` (imports it; loads the model)."""
        cls = resolve(self.trainer)
        data = {"pairs": pairs} if self.from_pairs else {"prompts": prompts}
        return cls(cfg, **data, stop=stop, progress=progress)


PACKAGES = (
    "rlhf_demo.ppo",
    "rlhf_demo.dpo",
    "rlhf_demo.reward_model",
    "rlhf_demo.grpo",
    "rlhf_demo.bon",
)
"""The algorithm packages, one line each, in the order the faces list them: each declares
``ALGORITHM`` in its ``algorithm.py``."""


class Registry(Mapping):
    """name → Algorithm. The packages' declarations are imported on first use (they import this module
    for ``Algorithm``, so they cannot be imported while it loads); ``register`` adds one more."""

    def __init__(self, packages: tuple[str, ...]):
        self._packages, self._algorithms, self._loaded = packages, {}, False

    def _all(self) -> dict[str, Algorithm]:
        if not self._loaded:
            self._loaded = True
            for package in self._packages:
                self._add(importlib.import_module(f"{package}.algorithm").ALGORITHM)
        return self._algorithms

    def _add(self, alg: Algorithm) -> Algorithm:
        if alg.name in self._algorithms:
            raise ValueError(f"an algorithm named {alg.name!r} is already registered")
        if getattr(alg.config, "algo", alg.name) != alg.name:
            raise ValueError(f"algorithm {alg.name!r}: its config says algo = {alg.config.algo!r}")
        self._algorithms[alg.name] = alg
        return alg

    def register(self, alg: Algorithm) -> Algorithm:
        """Add ``alg`` after the packages' own (ValueError when its name is taken or is not its config's ``algo``)."""
        self._all()
        return self._add(alg)

    def unregister(self, name: str) -> None:
        self._all().pop(name, None)

    def __getitem__(self, name: str) -> Algorithm:
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


ALGORITHMS = Registry(PACKAGES)
"""name → Algorithm, in the order the faces list them."""
register, unregister = ALGORITHMS.register, ALGORITHMS.unregister


def find(name) -> Algorithm | None:
    """The algorithm called ``name`` (any case, spaces around), or None (an old or foreign run folder)."""
    return ALGORITHMS.get(name.strip().lower()) if isinstance(name, str) else None


def get(name) -> Algorithm:
    """The algorithm called ``name``; ValueError in one line for any other name."""
    alg = find(name)
    if alg is None:
        raise ValueError(f"algo must be one of {', '.join(ALGORITHMS)}; got {str(name)[:40]!r}")
    return alg


def config_class(algo) -> type:
    """The config class of ``algo``; ValueError in one line for any other name."""
    return get(algo).config


def make_trainer(cfg, *, pairs: list[dict] | None = None, prompts: list[str] | None = None, stop=None, progress=None):
    """The trainer of ``cfg.algo`` (loads the model). ``pairs``: preference rows (None: ``cfg.preferences``);
    ``prompts``: training prompts (None: ``cfg.prompts``); each algorithm takes the one it learns from."""
    return get(cfg.algo).make_trainer(cfg, pairs=pairs, prompts=prompts, stop=stop, progress=progress)


def resolve(path: str):
    """``"package.module:NAME"`` → that object (``"package.module"`` → the module)."""
    module, _, attr = path.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod
