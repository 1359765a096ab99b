"""Human feedback: a store of pairwise labels, one JSON line per label, written and fsynced at once.

    {"id": ..., "time": ..., "labeller": USER_ID, "pair_id": ..., "prompt": ..., "response_a": ...,
     "response_b": ..., "label": "A" | "B" | "tie" | "skip"}

The file is append-only, so a label is safe on disk the moment ``add`` returns: closing the browser
tab, restarting the app or a crash loses nothing (a torn last line from a crash mid-write is skipped
when read). ``export_pairs`` turns A/B labels into TRL's prompt/chosen/rejected rows: one labeller's
own (``labeller=``), or the class's, one row per pair by majority vote (``classroom.agreement``);
ties and skips are counted but carry no preference. The same pair (``pair_id``) may be labelled by
several people (``open_pairs`` offers pairs others labelled), which is what measures agreement.
``clear`` moves the file aside (``labels-cleared-TIME.jsonl``): nothing is deleted. The labelled
pairs themselves are two responses sampled from the current reference model (``make_pair``).

The file *is* the class's pool: in classroom mode only identities that joined with the class code may
add to it (``ui.context.AppContext.gate``), each identity counts once per pair (its last label), and
``remove_labeller`` moves one labeller's lines out (into ``labels-removed-TIME.jsonl`` beside it), so
the majority vote, the agreement and the class's DPO set never see them again. ``tally`` counts labels
per labeller cheaply (it reads only what was appended since its last call), for the caps per labeller
and in total.
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
    _tallies: dict[str, dict] = {}  # path → {"inode", "offset", "per": {labeller: n}} (see ``tally``)

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path is not None else default_feedback_path()
        self._key = str(self.path.resolve())
        self._lock = FeedbackStore._locks.setdefault(self._key, threading.Lock())

    def tally(self) -> dict[str, int]:
        """labeller id → number of labels in the pool. Reads only the lines appended since the last call
        (the whole file again after ``clear`` or ``remove_labeller`` replaced it)."""
        with self._lock:
            t = FeedbackStore._tallies.get(self._key)
            try:
                st = self.path.stat()
            except OSError:
                FeedbackStore._tallies.pop(self._key, None)
                return {}
            if t is None or t["inode"] != st.st_ino or st.st_size < t["offset"]:
                t = FeedbackStore._tallies[self._key] = {"inode": st.st_ino, "offset": 0, "per": {}}
            with open(self.path, "rb") as f:
                f.seek(t["offset"])
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a torn last line waits for its newline
            for line in complete.splitlines():
                try:
                    rec = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(rec, dict) and rec.get("label") in LABELS:
                    who = str(rec.get("labeller", rec.get("session", "")))
                    t["per"][who] = t["per"].get(who, 0) + 1
            t["offset"] += len(complete)
            return dict(t["per"])

    def remove_labeller(self, labeller: str) -> int:
        """Move every label of ``labeller`` out of the pool into ``labels-removed-TIME.jsonl`` beside it (kept,
        not deleted); returns how many left."""
        with self._lock:
            if not self.path.exists():
                return 0
            keep, out = [], []
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        keep.append(line)
                        continue
                    who = rec.get("labeller", rec.get("session", "")) if isinstance(rec, dict) else None
                    (out if who == labeller else keep).append(line if line.endswith("\n") else line + "\n")
            if not out:
                return 0
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
            aside = self.path.with_name(f"{self.path.stem}-removed-{stamp}.jsonl")
            aside.write_text("".join(out), encoding="utf-8")
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(keep))
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
            return len(out)

    def add(
        self,
        prompt: str,
        response_a: str,
        response_b: str,
        label: str,
        labeller: str = "",
        pair_id: str | None = None,
        nickname: str = "",
        question: str = "",
    ) -> dict:
        """Append one label and fsync it before returning the stored record. ``labeller`` is a user id
        (``classroom.identity``), never a nickname or a token; ``pair_id`` names a pair shown to several
        people (a new one when None); ``question``: what the labeller was asked (kept when given)."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        for name, text in (("prompt", prompt), ("response A", response_a), ("response B", response_b)):
            if not isinstance(text, str):
                raise ValueError(f"{name} is not text")
            if len(text) > MAX_TEXT:
                raise ValueError(f"{name} is longer than {MAX_TEXT} characters")
        if not (response_a or "").strip() or not (response_b or "").strip():
            raise ValueError("there is no pair to label yet")
        if pair_id is not None and not (isinstance(pair_id, str) and pair_id.isalnum() and len(pair_id) <= 32):
            raise ValueError("unknown pair")
        rec = {
            "id": uuid.uuid4().hex[:12],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "labeller": str(labeller)[:32],
            "nickname": str(nickname)[:32],
            "pair_id": pair_id or uuid.uuid4().hex[:12],
            "prompt": prompt,
            "response_a": response_a,
            "response_b": response_b,
            "label": label,
            **({"question": str(question)[:MAX_TEXT]} if question else {}),
        }
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
        """Every stored label, oldest first; unreadable lines (a torn last write) are skipped. Records of
        older versions (a ``session`` field, no pair id) read as their own labeller and pair."""
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
                    rec.setdefault("labeller", rec.get("session", ""))
                    rec.setdefault("pair_id", rec.get("id", ""))
                    out.append(rec)
        return out

    def counts(self, labeller: str | None = None) -> dict[str, int]:
        """Labels per kind (A, B, tie, skip) plus ``pairs`` (A + B, usable for DPO) and ``total``, of one
        labeller or (None) of everyone."""
        c = {k: 0 for k in LABELS}
        for r in self.records():
            if labeller is None or r.get("labeller") == labeller:
                c[r["label"]] += 1
        c["pairs"] = c["A"] + c["B"]
        c["total"] = sum(c[k] for k in LABELS)
        return c

    def labellers(self) -> dict[str, int]:
        """labeller id → number of labels, most first."""
        n: dict[str, int] = {}
        for r in self.records():
            n[r["labeller"]] = n.get(r["labeller"], 0) + 1
        return dict(sorted(n.items(), key=lambda kv: -kv[1]))

    def export_pairs(self, labeller: str | None = None) -> list[dict]:
        """A/B labels as TRL rows (the preferred response is ``chosen``): the labeller's own, one per label;
        or (None) the class's, one per pair by majority vote of its labellers (a tied vote drops the pair)."""
        from rlhf_demo.classroom.agreement import majority, votes_by_pair

        recs = self.records()
        if labeller is not None:
            recs = [r for r in recs if r["labeller"] == labeller]
            return [_row(r, r["label"]) for r in recs if r["label"] in ("A", "B")]
        votes = votes_by_pair(recs)
        first = {}
        for r in recs:
            first.setdefault(r["pair_id"], r)
        rows = []
        for pid, r in first.items():
            win = majority(votes.get(pid, {})) if pid in votes else (r["label"] if r["label"] in ("A", "B") else None)
            if win is not None:
                rows.append(_row(r, win))
        return rows

    def open_pairs(self, labeller: str, max_labellers: int = 3) -> list[dict]:
        """Pairs someone else labelled that ``labeller`` has not, with fewer than ``max_labellers`` labellers,
        fewest labellers first: {"pair_id", "prompt", "response_a", "response_b"}."""
        seen: dict[str, set] = {}
        first: dict[str, dict] = {}
        for r in self.records():
            seen.setdefault(r["pair_id"], set()).add(r["labeller"])
            first.setdefault(r["pair_id"], r)
        out = [first[p] for p, who in seen.items() if labeller not in who and len(who) < max_labellers]
        out.sort(key=lambda r: len(seen[r["pair_id"]]))
        return [{k: r[k] for k in ("pair_id", "prompt", "response_a", "response_b")} for r in out]

    def export_jsonl(self, path: str | Path, labeller: str | None = None) -> Path:
        """Write the usable pairs as prompt/chosen/rejected JSONL (for download or ``--preferences``)."""
        from rlhf_demo.data.preferences import write_jsonl

        return write_jsonl(self.export_pairs(labeller), path)

    def clear(self) -> Path | None:
        """Start an empty pool: the file is renamed ``labels-cleared-TIME.jsonl`` beside it (kept, not deleted)."""
        with self._lock:
            if not self.path.exists():
                return None
            dest = self.path.with_name(f"{self.path.stem}-cleared-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}.jsonl")
            self.path.replace(dest)
            return dest


def _row(rec: dict, winner: str) -> dict:
    a, b = rec["response_a"], rec["response_b"]
    return {"prompt": rec["prompt"], "chosen": a if winner == "A" else b, "rejected": b if winner == "A" else a}


def make_pair(
    model,
    tokenizer,
    prompt: str,
    *,
    query_tokens: int | None = None,
    response_tokens: int = 16,
    temperature: float = 1.0,
    seed: int | None = None,
) -> tuple[str, str, str]:
    """Two responses sampled from ``model`` for one prompt: (prompt text, response A, response B).

    ``query_tokens`` cuts the prompt to at most that many tokens first, where a word ends
    (``prompts.truncate_at_word``; None = the whole prompt)."""
    return make_pairs(model, tokenizer, [(prompt, query_tokens)], response_tokens=response_tokens, temperature=temperature, seed=seed)[0]


def make_pairs(
    model, tokenizer, prompts: list[tuple[str, int | None]], *, response_tokens: int = 16, temperature: float = 1.0, seed: int | None = None
) -> list[tuple[str, str, str]]:
    """``make_pair`` for many (prompt, query_tokens) at once: one ``generate`` of 2·len(prompts) rows
    (what a class drawing pairs together costs one batch, not thirty)."""
    from rlhf_demo.data.prompts import truncate_at_word
    from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses

    rows = []
    for prompt, query_tokens in prompts:
        ids = truncate_at_word(tokenizer, prompt, query_tokens or 10_000)  # an opening ends where a word ends
        rows += [ids, ids]  # A and B of one pair side by side
    batch = sample_responses(
        model, tokenizer, rows, response_tokens, temperature=temperature, seed=seed if seed is not None else random.randrange(2**31)
    )
    queries, responses = decode_queries(tokenizer, batch), decode_responses(tokenizer, batch)
    return [(queries[2 * i], responses[2 * i], responses[2 * i + 1]) for i in range(len(prompts))]
