"""Text a person typed or uploaded, checked once with one clear line, before any model or parser sees it.

What gets through HTTP that no text box would produce: a lone UTF-16 surrogate (JSON's ``"\\ud800"``
decodes to one; a tokenizer cannot encode it and the answer could not be sent back), NUL characters,
not-a-string values. Uploaded files add: bytes that are not a text file (NUL bytes), a single line
longer than any prompt or pair could be (a 5 MB one-line CSV), and JSON nested deeper than any row of
prompt / chosen / rejected is (Python's parser gives up with a RecursionError).

``check_text`` is what the handlers that take typed text call (Playground, KL, Theory, Feedback);
``check_upload`` and ``json_loads`` are what the file parsers (``data/prompts.py``,
``data/preferences.py``) call. Each raises ``TextError`` (a ValueError) with one line that says what
is wrong and where, never echoing the bad text.
"""

from __future__ import annotations

import json
import re

MAX_LINE_CHARS = 100_000
"""The longest line an uploaded file may hold (a pair's three fields at their cap fit twice over)."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of brackets a JSON(L) upload may hold (a row is an object of strings: depth 1)."""

_BAD = re.compile("[\ud800-\udfff\x00]")


class TextError(ValueError):
    """Text that cannot be used; the message says what and where, in one line."""


def check_text(text, what: str = "the text", max_chars: int | None = None, allow_none: bool = True) -> str:
    """``text`` unchanged when it is usable text, else TextError: not a string, a NUL character or a lone
    surrogate (position counted from 1), longer than ``max_chars``."""
    if text is None and allow_none:
        return ""
    if not isinstance(text, str):
        raise TextError(f"{what} must be text, not {type(text).__name__}")
    if max_chars is not None and len(text) > max_chars:
        raise TextError(f"{what} has {len(text):,} characters; at most {max_chars:,} here")
    m = _BAD.search(text)
    if m is not None:
        pos, ch = m.start() + 1, m.group()
        if ch == "\x00":
            raise TextError(f"{what} holds a NUL character (at position {pos}): remove it")
        raise TextError(
            f"{what} holds a lone surrogate (U+{ord(ch):04X} at position {pos}), which is not valid text: retype it without that character"
        )
    return text


def check_upload(data: bytes, what: str = "the file", max_line: int | None = MAX_LINE_CHARS) -> None:
    """TextError when the bytes of an upload are not a text file (NUL bytes) or hold a line longer than
    ``max_line`` (bytes counted; a byte is at most a character; None: any length, e.g. a JSON array)."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise TextError(f"{what} holds NUL bytes (line {line}): it is not a text file; save it as UTF-8 text")
    if max_line is None:
        return
    start, n = 0, len(data)
    while start < n:
        end = data.find(b"\n", start)
        end = n if end < 0 else end
        if end - start > max_line:
            line = data[:start].count(b"\n") + 1
            raise TextError(
                f"{what}: line {line} is {(end - start) / 1e6:.1f} MB long; a line may hold at most "
                f"{max_line:,} characters (one prompt or pair per line)"
            )
        start = end + 1


def json_depth(text: str, stop: int | None = None) -> int:
    """The deepest bracket nesting of a JSON text, brackets inside strings not counted (O(n), no
    recursion); it stops counting once past ``stop``."""
    depth = deepest = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if stop is not None and deepest > stop:
                break
        elif tok in "]}":
            depth -= 1
    return deepest


def json_loads(text: str, where: str = "the file"):
    """``json.loads`` with one line for every failure: not JSON, nested deeper than ``MAX_JSON_DEPTH``."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise TextError(
            f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; a row is one object of prompt / chosen / rejected text"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TextError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise TextError(f"{where}: JSON nested too deeply") from None
