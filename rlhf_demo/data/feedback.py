"""Human feedback: a store of pairwise labels, one JSON line per label, written and fsynced at once.

    {"id": ..., "time": ..., "session": ..., "prompt": ..., "response_a": ..., "response_b": ...,
     "label": "A" | "B" | "tie" | "skip"}

The file is append-only, so a label is safe on disk the moment ``add`` returns: closing the browser
tab, restarting the app or a crash loses nothing (a torn last line from a crash mid-write is skipped
when read). ``export_pairs`` turns the A/B labels into TRL's prompt/chosen/rejected rows; ties and
skips are counted but carry no preference. The labelled pairs themselves are two responses sampled
from the current reference model (``make_pair``).
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from pathlib import Path

LABELS = ("A", "B", "tie", "skip")
FEEDBACK_ENV = "RLHF_DEMO_FEEDBACK"
MAX_TEXT = 4000


def default_feedback_path() -> Path:
    """``$RLHF_DEMO_FEEDBACK`` or ``RUNS_ROOT/feedback/labels.jsonl``."""
    from rlhf_demo.runs.folder import runs_root

    env = os.environ.get(FEEDBACK_ENV)
    return Path(env).expanduser() if env else runs_root() / "feedback" / "labels.jsonl"


class FeedbackStore:
    """Append-only JSONL of labels. Safe for several threads of one process (a lock around each write)."""

    _locks: dict[str, threading.Lock] = {}

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path is not None else default_feedback_path()
        self._lock = FeedbackStore._locks.setdefault(str(self.path.resolve()), threading.Lock())

    def add(self, prompt: str, response_a: str, response_b: str, label: str, session: str = "") -> dict:
        """Append one label and fsync it before returning the stored record."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        for name, text in (("prompt", prompt), ("response A", response_a), ("response B", response_b)):
            if not isinstance(text, str):
                raise ValueError(f"{name} is not text")
            if len(text) > MAX_TEXT:
                raise ValueError(f"{name} is longer than {MAX_TEXT} characters")
        if not (response_a or "").strip() or not (response_b or "").strip():
            raise ValueError("there is no pair to label yet")
        rec = {"id": uuid.uuid4().hex[:12], "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "session": session,
               "prompt": prompt, "response_a": response_a, "response_b": response_b, "label": label}
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab+") as f:
                if f.seek(0, os.SEEK_END) > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":  # a torn line from a crash: start ours on a fresh line
                        line = "\n" + line
                f.seek(0, os.SEEK_END)
                f.write(line.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        return rec

    def records(self) -> list[dict]:
        """Every stored label, oldest first; unreadable lines (a torn last write) are skipped."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and rec.get("label") in LABELS:
                    out.append(rec)
        return out

    def counts(self, session: str | None = None) -> dict[str, int]:
        """Labels per kind (A, B, tie, skip) plus ``pairs`` (A + B, usable for DPO) and ``total``."""
        c = {k: 0 for k in LABELS}
        for r in self.records():
            if session is None or r.get("session") == session:
                c[r["label"]] += 1
        c["pairs"] = c["A"] + c["B"]
        c["total"] = sum(c[k] for k in LABELS)
        return c

    def export_pairs(self) -> list[dict]:
        """A/B labels as TRL rows: the preferred response is ``chosen``, the other ``rejected``."""
        rows = []
        for r in self.records():
            if r["label"] == "A":
                rows.append({"prompt": r["prompt"], "chosen": r["response_a"], "rejected": r["response_b"]})
            elif r["label"] == "B":
                rows.append({"prompt": r["prompt"], "chosen": r["response_b"], "rejected": r["response_a"]})
        return rows

    def export_jsonl(self, path: str | Path) -> Path:
        """Write the usable pairs as prompt/chosen/rejected JSONL (for download or ``--preferences``)."""
        from rlhf_demo.data.preferences import write_jsonl

        return write_jsonl(self.export_pairs(), path)


def make_pair(model, tokenizer, prompt: str, *, query_tokens: int | None = None, response_tokens: int = 16,
              temperature: float = 1.0, seed: int | None = None) -> tuple[str, str, str]:
    """Two responses sampled from ``model`` for one prompt: (prompt text, response A, response B).

    ``query_tokens`` cuts the prompt to that many tokens first (None = the whole prompt)."""
    from rlhf_demo.data.prompts import truncate_prompt
    from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses

    ids = truncate_prompt(tokenizer, prompt, query_tokens or 10_000)
    batch = sample_responses(model, tokenizer, [ids, ids], response_tokens, temperature=temperature,
                             seed=seed if seed is not None else random.randrange(2**31))
    q = decode_queries(tokenizer, batch)[0]
    a, b = decode_responses(tokenizer, batch)
    return q, a, b
