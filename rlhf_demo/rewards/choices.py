"""Which reward components a face offers: the reward registry's named choices
(``functions.REWARD_CHOICES``, the list the shared allowlist reads its shipped reward models from), each
kept only where ``allowlist.check_reward`` would accept it, so a shared server never offers what it
would then refuse. ``py:`` (a Python function in a file) is never in the list: a face offers it as an
upload, locally only (:func:`python_allowed`), and :func:`python_term` turns the uploaded file and a
function name into the term, or into one line saying what is wrong.

It imports neither torch nor gradio.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.classroom.limits import LimitError
from rlhf_demo.rewards.functions import REWARD_CHOICES


def offered(lim: limits.Limits | None = None) -> list[str]:
    """The registry's components this server builds (all of them locally; on a shared server those
    ``allowlist.check_reward`` accepts), in the registry's order."""
    lim = lim or limits.current()
    out = []
    for name in REWARD_CHOICES:
        try:
            allowlist.check_reward(name, lim)
        except LimitError:
            continue
        out.append(name)
    return out


def python_allowed(lim: limits.Limits | None = None) -> bool:
    """Whether a ``py:PATH:FUNC`` term may be offered: locally only (``rewards/python.py``)."""
    return not (lim or limits.current()).shared


def next_component(used: list[str], choices: list[str]) -> str | None:
    """The builder's "add a term": the first offered component the spec does not use yet (None: all are)."""
    return next((c for c in choices if c not in used), None)


TRIAL_TEXTS = ("The movie was great fun.", "The movie was a bore.")
"""What an uploaded function is tried on before it becomes a term (a wrong answer shows now, not mid-run)."""
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def python_term(path: str, func: str) -> str:
    """The ``py:PATH:FUNC`` term of function ``func`` in the uploaded file ``path``, once the file imports,
    defines ``func`` and ``func`` answers :data:`TRIAL_TEXTS` with one finite number each; otherwise a
    ``RewardError`` in one line naming the function (``rewards/python.py``). A file name that a spec could
    not hold as one term (spaces, '+', '*') is copied beside itself under a plain name first. Refused on a
    shared server."""
    from rlhf_demo.rewards.functions import RewardError
    from rlhf_demo.rewards.python import PREFIX, SHARED_REFUSAL, PythonReward

    if not python_allowed():
        raise RewardError(SHARED_REFUSAL)
    if not path:
        raise RewardError("Python reward: choose a .py file first")
    func = (func or "").strip()
    if not func.isidentifier():
        raise RewardError(f"Python reward: {func!r} is not a function name (write the name of a def in the file, e.g. score)")
    p = Path(path)
    if _SAFE.sub("", p.name) != p.name:
        plain = p.with_name(_SAFE.sub("_", p.name))
        shutil.copyfile(p, plain)
        p = plain
    if any(c.isspace() or c in "*+" for c in str(p)):
        raise RewardError(f"Python reward: the path {str(p)!r} has a space, '*' or '+'; move the file to a plain path")
    reward = PythonReward(f"{p}:{func}")  # imports the file and finds the function, or one line
    reward(list(TRIAL_TEXTS))  # one finite number per text, or one line naming the function
    return f"{PREFIX}{p}:{func}"
