"""Preference pairs in TRL's standard format: rows of ``prompt`` / ``chosen`` / ``rejected`` text.

Three sources, one format:

- **Synthetic** (the DPO paper's IMDb recipe, Rafailov et al. 2023, §6.1): cut each training opening
  to a random 2–8 tokens, sample ``k`` responses from the reference model, score query+response with
  a reward function, and keep chosen = the best, rejected = the worst (ties are skipped).
  ``synthesize_pairs`` does it with a progress callback.
- **Human**: the Feedback tab's labels (``feedback.py`` exports them in this format).
- **Upload / Hub**: JSONL or CSV with ``prompt``, ``chosen``, ``rejected`` columns, validated row by
  row: bad rows are reported with their row number and left out, good rows are kept.

Responses are plain continuation text (not chat messages): the prompt is a review opening and the
completion continues it. TRL appends EOS to both completions when it tokenises them.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.config import KnobConfig, knob
from rlhf_demo.data import goodhart
from rlhf_demo.data.prompts import builtin_prompts, truncate_prompt
from rlhf_demo.rewards.functions import score_pairs
from rlhf_demo.textcheck import MAX_LINE_CHARS, TextError, check_text, check_upload, json_loads

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_PREFERENCES = ASSETS / "preferences.jsonl"
"""The default synthetic set shipped with the project (see ``python -m rlhf_demo preferences``)."""

COLUMNS = ("prompt", "chosen", "rejected")
MAX_FILE_BYTES = 5_000_000
MAX_ROWS = 20_000
MAX_FIELD_CHARS = 4_000
MAX_REPORTED_ERRORS = 50

ProgressFn = Callable[[float, str], None]


class PreferenceError(ValueError):
    """A preference file or dataset cannot be used at all; the message says why."""


@dataclass
class PreferenceSet:
    """Validated rows plus the per-row problems found (row numbers count from 1, header excluded)."""

    rows: list[dict]
    errors: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> str:
        s = f"{len(self.rows)} usable pairs"
        if self.source:
            s += f" from {self.source}"
        if self.errors:
            s += f"; {len(self.errors)} rows left out (" + "; ".join(self.errors[:3])
            s += ", …)" if len(self.errors) > 3 else ")"
        return s


# ---------------------------------------------------------------------------------------------
# validation and loading
# ---------------------------------------------------------------------------------------------


def validate_row(obj, where: str) -> tuple[dict | None, str | None]:
    """One row → (clean row, None) or (None, error). Extra keys are kept (scores, source, ...)."""
    if not isinstance(obj, dict):
        return None, f"{where}: not an object with prompt/chosen/rejected"
    missing = [c for c in COLUMNS if c not in obj or obj[c] is None]
    if missing:
        return None, f"{where}: missing {', '.join(missing)}"
    for c in COLUMNS:
        if isinstance(obj[c], list):
            return None, f"{where}: '{c}' is a list of chat messages; only plain text is supported"
        if not isinstance(obj[c], str):
            return None, f"{where}: '{c}' is not text"
        if len(obj[c]) > MAX_FIELD_CHARS:
            return None, f"{where}: '{c}' is longer than {MAX_FIELD_CHARS} characters"
        try:
            check_text(obj[c], f"{where}: '{c}'")
        except TextError as exc:
            return None, str(exc)
    if not obj["chosen"].strip() or not obj["rejected"].strip():
        return None, f"{where}: empty chosen or rejected response"
    if obj["chosen"] == obj["rejected"]:
        return None, f"{where}: chosen and rejected are identical"
    return dict(obj), None


def _decode(data: bytes, max_line: int | None = MAX_LINE_CHARS) -> str:
    if not data or not data.strip():
        raise PreferenceError("the preference file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise PreferenceError(f"the preference file is {len(data) / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB")
    try:
        check_upload(data, "the preference file", max_line)
    except TextError as exc:
        raise PreferenceError(str(exc)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PreferenceError(f"the preference file is not UTF-8 text (bad byte on line {line}); save it as UTF-8") from exc


def parse_preferences(data: bytes, filename: str = "preferences.jsonl") -> PreferenceSet:
    """Validate an uploaded ``.jsonl``/``.json`` or ``.csv``/``.tsv`` file.

    Whole-file problems (empty, too big, not UTF-8, NUL bytes, a line of megabytes, JSON nested too deep,
    no prompt/chosen/rejected columns, no usable row) raise PreferenceError in one line; problems of
    single rows go to ``errors`` and the other rows are kept.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise PreferenceError("the preference file: expected the file's bytes")
    try:
        return _parse_preferences(bytes(data), str(filename))
    except (csv.Error, RecursionError, MemoryError) as exc:  # anything else a parser can say: still one line
        raise PreferenceError(
            f"the preference file could not be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): save it as JSONL or "
            "CSV with prompt, chosen, rejected"
        ) from None


def _parse_preferences(data: bytes, filename: str) -> PreferenceSet:
    name = filename.lower()
    text = _decode(data, None if name.endswith(".json") else MAX_LINE_CHARS)  # a JSON array may be one line
    rows, errors = [], []
    if name.endswith((".csv", ".tsv")):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ",")
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise PreferenceError(
                f"the CSV header must name the columns prompt, chosen, rejected; missing: {', '.join(missing)} "
                f"(found: {', '.join(header) or 'nothing'})"
            )
        reader.fieldnames = header
        items = ((i, r) for i, r in enumerate(reader, 1))
        kind = "row"
    elif name.endswith((".jsonl", ".json", ".ndjson")):
        lines = text.splitlines()
        if name.endswith(".json") and text.lstrip().startswith("["):
            try:
                items_list = json_loads(text, "the preference file")
            except TextError as exc:
                raise PreferenceError(str(exc)) from None
            items = ((i, r) for i, r in enumerate(items_list, 1))
        else:

            def gen():
                for i, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        yield i, json_loads(line, "the line")
                    except TextError as exc:
                        yield i, ValueError(str(exc).removeprefix("the line").strip(" :"))

            items = gen()
        kind = "line"
    else:
        raise PreferenceError(f"unsupported file type {Path(filename).suffix or filename!r}: use .jsonl or .csv")
    first_keys = None
    for i, obj in items:
        if len(rows) >= MAX_ROWS:
            raise PreferenceError(f"the preference file holds more than {MAX_ROWS} pairs; split it")
        if isinstance(obj, ValueError):
            errors.append(f"{kind} {i}: {obj}")
            continue
        if first_keys is None and isinstance(obj, dict):
            first_keys = list(obj)
        row, err = validate_row(obj, f"{kind} {i}")
        if err:
            errors.append(err)
        else:
            rows.append(row)
    if not rows:
        if first_keys is not None and not any(c in first_keys for c in COLUMNS):
            raise PreferenceError(f"no prompt/chosen/rejected fields found (the rows have: {', '.join(first_keys)})")
        detail = ("; ".join(errors[:3]) + (" …" if len(errors) > 3 else "")) if errors else "the file holds no rows"
        raise PreferenceError(f"no usable preference pairs: {detail}")
    return PreferenceSet(
        rows,
        errors[:MAX_REPORTED_ERRORS] + ([f"… and {len(errors) - MAX_REPORTED_ERRORS} more"] if len(errors) > MAX_REPORTED_ERRORS else []),
        Path(filename).name,
    )


def load_preferences(source: str | Path | None = None) -> PreferenceSet:
    """Pairs from ``None``/``"shipped"`` (the shipped set), ``"goodhart"`` (the shipped pairs labelled by
    ``goodhart.GOLD``), a local file, or ``hf:DATASET[:SPLIT]``.

    On a shared server (``rlhf_demo.classroom.limits``) no local file: a Hub id only, loaded remote-only, and
    every refusal or failure of a Hub id reads one line (LimitError)."""
    if source in (None, "", "shipped", "default"):
        source = SHIPPED_PREFERENCES
    elif source == goodhart.SOURCE:  # shipped too: the pairs labelled by the Goodhart gold (data/goodhart.py)
        source = goodhart.PAIRS
    elif limits.current().shared:
        source = allowlist.check_source(source if isinstance(source, str) else str(source), "preferences")
        if not source.startswith("hf:"):
            raise PreferenceError("the Feedback tab's labels and uploaded files are read by the DPO panel: choose them there")
    source_str = str(source)
    if source_str.startswith("hf:"):
        return load_hub_preferences(source_str[3:])
    p = Path(source_str).expanduser()
    if not p.exists():
        raise PreferenceError(f"preference file {source_str!r} does not exist")
    if p.is_dir():
        raise PreferenceError(f"{source_str!r} is a folder, not a preference file")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PreferenceError(f"the preference file is {size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB")
    out = parse_preferences(p.read_bytes(), p.name)
    out.source = str(p)
    return out


def load_hub_preferences(spec: str) -> PreferenceSet:
    """``DATASET[:SPLIT]`` from the Hugging Face Hub (needs network), plain-text prompt/chosen/rejected columns."""
    name, _, split = spec.partition(":")
    split = split or "train"
    path = allowlist.hub_dataset_path(name, "preferences", feedback=True)  # shared: remote only, size checked
    try:
        from datasets import load_dataset

        ds = load_dataset(path, split=split)
    except Exception as exc:  # noqa: BLE001 - turned into a clear message
        if path != name:
            raise limits.LimitError(allowlist.hub_refusal(name)) from None
        raise PreferenceError(f"could not load Hub dataset {name!r} (offline, or no such dataset/split): {type(exc).__name__}") from exc
    missing = [c for c in COLUMNS if c not in ds.column_names]
    if missing:
        raise PreferenceError(f"Hub dataset {name!r} lacks columns {', '.join(missing)}; it has {ds.column_names}")
    rows, errors = [], []
    for i, obj in enumerate(ds.select(range(min(len(ds), MAX_ROWS))), 1):
        row, err = validate_row({c: obj[c] for c in COLUMNS}, f"row {i}")
        (errors.append(err) if err else rows.append(row))
    if not rows:
        raise PreferenceError(f"Hub dataset {name!r} has no usable plain-text pairs: {'; '.join(errors[:3])}")
    return PreferenceSet(rows, errors[:MAX_REPORTED_ERRORS], f"hf:{name}:{split}")


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# synthesis: best-of-k vs worst-of-k from the reference model
# ---------------------------------------------------------------------------------------------


@dataclass
class SynthConfig(KnobConfig):
    """How a synthetic preference set is made (the DPO paper's IMDb recipe). ``python -m rlhf_demo
    preferences`` builds its flags from these knobs, so its messages name a knob by its flag."""

    NAME: ClassVar[str] = "synthetic preferences"
    SAY: ClassVar[str] = "flag"

    n_prompts: int = knob(
        0,
        "Built-in training openings used (0 = all of the training split; held-out ones are never used).",
        kind="int",
        lo=0,
        hi=5000,
        flag="prompts",
    )
    cuts_per_prompt: int = knob(
        3, "Random prefixes (2–8 tokens: query_tokens) cut from each opening.", kind="int", lo=1, hi=20, flag="cuts"
    )
    query_tokens: tuple[int, int] = knob(
        (2, 8), "Length of each cut prefix in tokens: N or MIN:MAX (drawn uniformly).", kind="range", lo=1, hi=64, cli=False
    )
    samples: int = knob(4, "k responses sampled per query; chosen = best, rejected = worst.", kind="int", lo=2, hi=32)
    response_tokens: int = knob(12, "Tokens per sampled response.", kind="int", lo=1, hi=128)
    temperature: float = knob(1.0, "Sampling temperature of the reference.", kind="float", lo=1e-3, hi=5.0)
    reward: str = knob("vader-positive", "Reward that ranks the samples.", kind="str")
    seed: int = knob(0, "Random seed (prefix cuts and sampling).", kind="int", lo=0)
    batch_size: int = knob(32, "Sequences sampled per generate call.", kind="int", lo=1, hi=1024, cli=False)
    min_gap: float = knob(
        1e-6,
        "Skip queries whose best and worst scores differ by less than this (ties carry no preference).",
        kind="float",
        lo=0.0,
        cli=False,
    )


def synthesize_pairs(
    model, tokenizer, reward_fn, cfg: SynthConfig, prompts: list[str] | None = None, progress: ProgressFn | None = None
) -> list[dict]:
    """Sample ``cfg.samples`` responses per query from ``model`` and keep (best, worst) as (chosen, rejected).

    Returns rows ``{prompt, chosen, rejected, chosen_score, rejected_score}``; ``prompt`` is the decoded
    query and ``chosen``/``rejected`` the decoded continuations (they usually start with a space).
    """
    from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses

    cfg.validate()
    say = progress or (lambda f, m: None)
    prompts = list(prompts if prompts is not None else builtin_prompts("train"))
    if cfg.n_prompts:
        prompts = prompts[: cfg.n_prompts]
    if not prompts:
        raise PreferenceError("no prompts to build preference pairs from")
    rng = random.Random(cfg.seed)
    queries = [truncate_prompt(tokenizer, p, rng.randint(*cfg.query_tokens)) for p in prompts for _ in range(cfg.cuts_per_prompt)]
    per_call = max(1, cfg.batch_size // cfg.samples)  # queries per generate call, each repeated k times
    rows = []
    total = len(queries)
    for start in range(0, total, per_call):
        chunk = queries[start : start + per_call]
        flat = [q for q in chunk for _ in range(cfg.samples)]  # [len(chunk) * k]
        batch = sample_responses(
            model, tokenizer, flat, cfg.response_tokens, temperature=cfg.temperature, seed=cfg.seed * 1_000_003 + start
        )
        q_txt, r_txt = decode_queries(tokenizer, batch), decode_responses(tokenizer, batch)
        scores = score_pairs(reward_fn, q_txt, r_txt)
        for j in range(len(chunk)):
            lo, hi = j * cfg.samples, (j + 1) * cfg.samples
            group = list(zip(scores[lo:hi], r_txt[lo:hi]))
            best = max(group, key=lambda t: t[0])
            worst = min(group, key=lambda t: t[0])
            if best[0] - worst[0] < cfg.min_gap or best[1] == worst[1]:
                continue
            rows.append(
                {
                    "prompt": q_txt[lo],
                    "chosen": best[1],
                    "rejected": worst[1],
                    "chosen_score": round(float(best[0]), 4),
                    "rejected_score": round(float(worst[0]), 4),
                }
            )
        done = min(start + per_call, total)
        say(done / total, f"sampled {done}/{total} queries × {cfg.samples} responses; {len(rows)} pairs so far")
    return rows
