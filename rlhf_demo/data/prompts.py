"""Prompts: the built-in movie-review openings, uploaded files, Hub datasets, and length sampling.

The built-in set (``assets/review_openings.txt``, written for this project) is split once and for
all into a training part and a held-out part (every 5th opening). Held-out prompts are never used
for training: evaluation (reward gain, KL) is always measured on them.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.textcheck import TextError, check_text, check_upload, json_loads

ASSETS = Path(__file__).resolve().parents[1] / "assets"
OPENINGS_FILE = ASSETS / "review_openings.txt"
HELDOUT_EVERY = 5
MAX_PROMPT_FILE_BYTES = 2_000_000
MAX_PROMPTS = 20_000
MAX_PROMPT_CHARS = 2_000


class PromptError(ValueError):
    """A prompts file or dataset could not be used; the message says why."""


def builtin_prompts(split: str = "train") -> list[str]:
    """The built-in openings. ``split``: ``"train"``, ``"heldout"`` or ``"all"``."""
    lines = [l.strip() for l in OPENINGS_FILE.read_text(encoding="utf-8").splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    if split == "all":
        return lines
    if split == "heldout":
        return lines[::HELDOUT_EVERY]
    if split == "train":
        return [l for i, l in enumerate(lines) if i % HELDOUT_EVERY]
    raise ValueError(f"unknown split {split!r}: use train, heldout or all")


def parse_prompts(data: bytes, filename: str = "prompts.txt") -> list[str]:
    """Prompts from an uploaded file: ``.txt`` (one per line) or ``.csv``/``.tsv``/``.jsonl`` (a ``prompt``,
    ``text`` or ``query`` column/key, else the first column). Raises PromptError with a clear reason, in
    one line, for anything a file can hold (``textcheck``: NUL bytes, a line of megabytes, deep JSON,
    lone surrogates)."""
    if not isinstance(data, (bytes, bytearray)):
        raise PromptError("prompts file: expected the file's bytes")
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise PromptError(f"prompts file is {len(data) / 1e6:.1f} MB; the limit is {MAX_PROMPT_FILE_BYTES / 1e6:.0f} MB")
    try:
        return _parse_prompts(bytes(data), str(filename))
    except TextError as exc:
        raise PromptError(str(exc)) from None
    except (csv.Error, RecursionError, MemoryError) as exc:  # anything else a parser can say: still one line
        raise PromptError(
            f"prompts file could not be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): save it as one prompt per line, "
            "or as CSV / JSONL with a 'prompt' column"
        ) from None


def _parse_prompts(data: bytes, filename: str) -> list[str]:
    check_upload(data, "prompts file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptError(f"prompts file is not UTF-8 text (byte {exc.start})") from exc
    name = filename.lower()
    prompts: list[str] = []
    if name.endswith((".csv", ".tsv")):
        delim = "\t" if name.endswith(".tsv") else ","
        rows = list(csv.reader(io.StringIO(text), delimiter=delim))
        if not rows:
            raise PromptError("prompts file is empty")
        header = [h.strip().lower() for h in rows[0]]
        col = next((header.index(c) for c in ("prompt", "text", "query", "review") if c in header), None)
        body = rows[1:] if col is not None else rows
        col = col or 0
        prompts = [r[col].strip() for r in body if len(r) > col]
    elif name.endswith(".jsonl"):
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            obj = json_loads(line, f"line {i}")
            val = next((obj.get(k) for k in ("prompt", "text", "query") if isinstance(obj, dict) and k in obj), None)
            if not isinstance(val, str):
                raise PromptError(f"line {i} has no string 'prompt', 'text' or 'query' field")
            prompts.append(check_text(val, f"line {i}'s prompt").strip())
    else:
        prompts = [l.strip() for l in text.splitlines()]
    prompts = [check_text(p, f"prompt {i}")[:MAX_PROMPT_CHARS] for i, p in enumerate(prompts, 1) if p]
    if not prompts:
        raise PromptError("prompts file holds no prompts")
    if len(prompts) > MAX_PROMPTS:
        raise PromptError(f"prompts file holds {len(prompts)} prompts; the limit is {MAX_PROMPTS}")
    return prompts


def load_prompts(source: str | None = None, split: str = "train") -> list[str]:
    """Prompts from ``None``/``"builtin"`` (the built-in set), a local file, or ``hf:DATASET[:COLUMN]``.

    On a shared server (``rlhf_demo.classroom.limits``) no local file: a Hub id only, loaded remote-only
    (``allowlist.hub_dataset_path``), and every refusal or failure reads one line (LimitError)."""
    if source in (None, "", "builtin"):
        return builtin_prompts(split)
    shared = limits.current().shared
    source = allowlist.check_source(source, "prompts")
    if shared and source.startswith(limits.UPLOAD):
        raise PromptError("an uploaded prompts file is read by the panel it was uploaded to: upload it there")
    if source.startswith("hf:"):
        parts = source[3:].split(":")
        name, column = parts[0], (parts[1] if len(parts) > 1 else "text")
        from rlhf_demo.models.loading import ModelLoadError, require_hub

        path = allowlist.hub_dataset_path(name, "prompts")
        try:
            if not shared:
                require_hub(name, "use the built-in prompts or upload a file")
        except ModelLoadError as exc:
            raise PromptError(f"dataset: {exc}") from exc
        try:
            from datasets import load_dataset

            ds = load_dataset(path, split="train")
        except Exception as exc:  # noqa: BLE001
            if shared:
                raise limits.LimitError(allowlist.hub_refusal(name)) from None
            raise PromptError(f"could not load Hub dataset {name!r} (offline, or no such dataset): {type(exc).__name__}") from exc
        if column not in ds.column_names:
            raise PromptError(f"dataset {name!r} has no column {column!r}; it has {ds.column_names}")
        return [str(t)[:MAX_PROMPT_CHARS] for t in ds[column][:MAX_PROMPTS] if str(t).strip()]
    p = Path(source).expanduser()
    if not p.exists():
        raise PromptError(f"prompts file {source!r} does not exist")
    return parse_prompts(p.read_bytes(), p.name)


@dataclass
class LengthSampler:
    """Draw an integer length uniformly from ``[min_value, max_value]`` (the course's LengthSampler)."""

    min_value: int
    max_value: int

    def __post_init__(self):
        if self.min_value < 1 or self.max_value < self.min_value:
            raise ValueError(f"length range [{self.min_value}, {self.max_value}] is empty or below 1")

    def __call__(self, rng: random.Random) -> int:
        return rng.randint(self.min_value, self.max_value)


def truncate_prompt(tokenizer, prompt: str, n_tokens: int) -> list[int]:
    """The first ``n_tokens`` token ids of ``prompt`` (all of it when shorter)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return ids[: max(1, n_tokens)]


def truncate_at_word(tokenizer, prompt: str, n_tokens: int) -> list[int]:
    """The first ``n_tokens`` token ids of ``prompt`` or fewer, ending where a word ends: the cut moves
    back to just before a token that starts a new word (with a space or a newline) or punctuation, so an
    opening reads "My kids", never "My kids be". The first word is kept whole even when it takes more
    than ``n_tokens`` tokens; a prompt that fits is returned whole."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n = max(1, n_tokens)
    if len(ids) <= n:
        return ids
    pieces = tokenizer.batch_decode([[i] for i in ids])

    def starts_word(k: int) -> bool:  # a cut before token k splits no word
        return k >= len(ids) or pieces[k][:1].isspace() or pieces[k][:1] in '.,;:!?)]}"…'

    cut = next((k for k in range(n, 0, -1) if starts_word(k)), None)
    if cut is None:  # one long first word: keep it whole
        cut = next(k for k in range(n + 1, len(ids) + 1) if starts_word(k))
    return ids[:cut]
