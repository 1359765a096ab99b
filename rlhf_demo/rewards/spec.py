"""The reward builder's spec: a weighted sum of reward components, written as one line of text.

The same text on the command line (``--reward=SPEC``), in the UI and over the API::

    0.7*vader-positive + 0.3*on-topic - 0.5*repetition

Grammar (``SP`` = one or more spaces)::

    spec   := ["-" [SP]] term (SP op SP term)*
    op     := "+" | "-"
    term   := [WEIGHT "*"] NAME
    WEIGHT := an unsigned decimal number: 2, 0.7, .5, 1e-3
    NAME   := characters other than spaces, "*" and "+"  ("-", ":" and "/" are allowed:
              vader-positive, keyword:great, rm:runs/rm-demo, py:my_reward.py:score)

so the operators between terms need spaces around them (``vader-positive - repetition``: the "-" inside
a name has none). A term's weight is its WEIGHT (1 when not written), negated after a " - " or a leading
"-". A spec that is a single bare name (``vader-positive``, ``rm:runs/rm-demo``) is not a sum at all:
``single_name`` gives it back and ``functions.make_reward`` builds that reward as it always did.

Pure: text in, ``Term``s out; names are not looked up here (``functions.make_reward`` does that), so
``classroom/limits.py`` can check each component of a spec without building any.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_TERMS = 8
"""More components than this is a typo, not a reward."""
_OPERATOR = re.compile(r"\s+([+-])\s+")
_WEIGHT = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
EXAMPLE = "0.7*vader-positive + 0.3*on-topic - 0.5*repetition"


class SpecError(ValueError):
    """A reward spec that does not parse; the message (one line) says where and how to write it."""


@dataclass(frozen=True)
class Term:
    """One component of the sum: ``weight · r_name``."""

    weight: float
    name: str


def _term(text: str, sign: float) -> Term:
    """``[WEIGHT*]NAME`` → Term (``sign`` from the operator before it)."""
    if not text:
        raise SpecError(f"reward spec: a term is missing (write terms joined by ' + ' or ' - ', e.g. {EXAMPLE})")
    if any(c.isspace() for c in text) or "+" in text:
        raise SpecError(f"reward spec: {text!r} is not one term: names have no spaces, and + / - between terms need a space on each side")
    weight, star, name = text.rpartition("*")
    if not star:
        return Term(sign, text)
    if "*" in weight:
        raise SpecError(f"reward spec: {text!r} has more than one '*': write one WEIGHT*NAME")
    if not name:
        raise SpecError(f"reward spec: {text!r} has a weight but no reward name after the '*'")
    if not _WEIGHT.fullmatch(weight):
        raise SpecError(f"reward spec: the weight {weight!r} of {name!r} is not a number (write e.g. 0.5*{name})")
    if not math.isfinite(float(weight)):
        raise SpecError(f"reward spec: the weight {weight!r} of {name!r} is too large")
    return Term(sign * float(weight), name)


def parse_spec(spec: str) -> list[Term]:
    """The terms of ``spec`` in the order written (see the module docstring's grammar); SpecError in one
    line when it does not parse or names a component twice."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise SpecError(f"reward spec is empty: write a reward name or a weighted sum, e.g. {EXAMPLE}")
    sign = 1.0
    if text.startswith("-"):
        sign, text = -1.0, text[1:].lstrip()
    parts = _OPERATOR.split(text)  # [term, op, term, op, term, ...]
    terms = [_term(parts[0], sign)]
    for op, part in zip(parts[1::2], parts[2::2]):
        terms.append(_term(part, -1.0 if op == "-" else 1.0))
    if len(terms) > MAX_TERMS:
        raise SpecError(f"reward spec has {len(terms)} terms; at most {MAX_TERMS}")
    seen: set[str] = set()
    for t in terms:
        if t.name in seen:
            raise SpecError(f"reward spec names {t.name!r} twice: give each component one weight")
        seen.add(t.name)
    return terms


def single_name(spec: str) -> str | None:
    """The name when ``spec`` is one bare reward name (no weight, no sign, no sum), else None: such a
    spec builds that reward itself, with its own numbers and details."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text or text.startswith("-") or "*" in text or "+" in text or any(c.isspace() for c in text):
        return None
    return text


def format_spec(terms: list[Term]) -> str:
    """Terms → the canonical spec text (``parse_spec(format_spec(t)) == t``): weights written with ``g``."""
    out = ""
    for i, t in enumerate(terms):
        w = abs(t.weight)
        body = t.name if w == 1.0 else f"{w:g}*{t.name}"
        out += (("-" if t.weight < 0 else "") + body) if i == 0 else (f" - {body}" if t.weight < 0 else f" + {body}")
    return out


# ----------------------------------------------------------------------------- the builder's rows
def rows_of(spec: str) -> list[tuple[str, float]]:
    """The builder's rows (component, weight) of ``spec``, in the order written; SpecError if it does not
    parse. ``spec_of(rows_of(s))`` is ``s`` written canonically."""
    return [(t.name, t.weight) for t in parse_spec(spec)]


def spec_of(rows: list[tuple[str, float]]) -> str:
    """Rows (component, weight) → the spec text they make: ``Σ weight·component`` written by
    :func:`format_spec` (weight 1 is not written, a negative weight is a " - "). SpecError in one line
    for an empty row, a weight that is not a finite number, a component named twice or a name that
    would not read back as one term."""
    terms = []
    for i, (name, weight) in enumerate(rows):
        name = name.strip() if isinstance(name, str) else ""
        if not name:
            raise SpecError(f"reward builder: row {i + 1} has no component: choose one, or remove the row")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise SpecError(f"reward builder: the weight of {name!r} must be a number (e.g. 0.5, or -0.5 to subtract it)")
        terms.append(Term(float(weight), name))
    text = format_spec(terms)
    try:
        back = [t.name for t in parse_spec(text)]
    except SpecError as exc:
        raise SpecError(str(exc).replace("reward spec", "reward builder", 1)) from None
    if back != [t.name for t in terms]:
        raise SpecError(f"reward builder: a component's name has no spaces, '*' or '+' and does not start with '-' (got {text!r})")
    return text


def with_term(spec: str, name: str, weight: float = 1.0) -> str:
    """``spec`` with one more row ``weight·name`` at the end (an empty spec: that row alone)."""
    rows = rows_of(spec) if spec and spec.strip() else []
    return spec_of([*rows, (name, weight)])


def without_term(spec: str, index: int) -> str:
    """``spec`` without its row ``index`` (from 0); the last row is never removed (a reward needs a term)."""
    rows = rows_of(spec)
    if not 0 <= index < len(rows):
        raise SpecError(f"reward builder: there is no row {index + 1} (the spec has {len(rows)})")
    if len(rows) == 1:
        raise SpecError("reward builder: a reward needs at least one component (change this row instead)")
    return spec_of(rows[:index] + rows[index + 1 :])
