"""``py:PATH:FUNC``: a reward written by the learner, a Python function in a file.

    def FUNC(texts: list[str]) -> list[float]: ...

It receives the same query + response texts as the built-in sentiment reward and returns one finite
number per text. Loading the file runs it (it is Python), so this reward exists **only locally**: on a
shared server (``RLHF_DEMO_SHARED=1``, ``classroom/limits.py``) it is refused with one line naming
``py:``, here and in ``allowlist.check_reward``.

Whatever goes wrong (no such file, the file raises on import, no such function, the function raises,
returns the wrong number of scores or a non-finite or non-numeric score) becomes one ``RewardError``
line naming the function, e.g. ``reward function score (py:my.py:score) returned 3 scores for 8 texts``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

from rlhf_demo.rewards.functions import RewardError, RewardFunction

PREFIX = "py:"
SHARED_REFUSAL = "reward: py: (a Python function in a file) runs only locally, never on a shared server"


def _line(exc: BaseException) -> str:
    """``TypeName: first line of the message``."""
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def split_spec(rest: str) -> tuple[str, str]:
    """``PATH:FUNC`` (what follows ``py:``) → (PATH, FUNC); the path may hold ':' (the last one splits)."""
    path, sep, func = rest.strip().rpartition(":")
    if not sep or not path.strip() or not func.isidentifier():
        raise RewardError(f"a Python reward is written py:PATH:FUNC (a .py file and a function name in it), not py:{rest.strip()}")
    return path.strip(), func


def load_function(path: str, func: str):
    """Import the file ``path`` (under a name of its own, so two files never clash) and return its ``func``."""
    spec_text = f"{PREFIX}{path}:{func}"
    p = Path(path).expanduser()
    if not p.is_file():
        raise RewardError(f"{spec_text}: no such file {path!r}")
    name = "rlhf_user_reward_" + hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise RewardError(f"{spec_text}: {path!r} cannot be imported as Python (name it .py)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the learner's code: any error becomes one line
        raise RewardError(f"{spec_text}: importing {path!r} raised {_line(exc)}") from exc
    fn = getattr(module, func, None)
    if fn is None:
        raise RewardError(f"{spec_text}: {path!r} defines no {func!r}")
    if not callable(fn):
        raise RewardError(f"{spec_text}: {func!r} in {path!r} is a {type(fn).__name__}, not a function")
    return fn


def check_scores(out, n: int, who: str) -> list[float]:
    """The function's answer as ``n`` finite floats, else RewardError naming ``who``."""
    try:
        values = list(out)
    except TypeError:
        raise RewardError(f"{who} returned a {type(out).__name__}, not a list of numbers") from None
    if len(values) != n:
        raise RewardError(f"{who} returned {len(values)} scores for {n} texts (one number per text)")
    scores = []
    for i, v in enumerate(values):
        if isinstance(v, (str, bytes)) or not hasattr(v, "__float__"):
            raise RewardError(f"{who} returned {type(v).__name__} {v!r:.40} for text {i}, not a number")
        x = float(v)
        if not math.isfinite(x):
            raise RewardError(f"{who} returned a non-finite score ({x}) for text {i}")
        scores.append(x)
    return scores


class PythonReward(RewardFunction):
    """``py:PATH:FUNC`` (see the module docstring); scores query + response like the sentiment rewards."""

    def __init__(self, rest: str):
        from rlhf_demo.classroom import limits

        if limits.current().shared:
            raise RewardError(SHARED_REFUSAL)
        path, func = split_spec(rest)
        super().__init__(f"{PREFIX}{path}:{func}")
        self.fn = load_function(path, func)
        self.who = f"reward function {func} ({self.name})"

    def score(self, texts):
        try:
            out = self.fn(list(texts))
        except Exception as exc:  # noqa: BLE001 - the learner's code: any error becomes one line
            raise RewardError(f"{self.who} raised {_line(exc)}") from exc
        return check_scores(out, len(texts), self.who), [None] * len(texts)
