"""The Feedback tab's two actions, shared by its buttons and the named API (``/feedback_pair``,
``/feedback_label``), so both pass exactly the same checks:

- ``draw_pair``: a pair for this session to label — on a shared server half the time one another
  person labelled (``FeedbackStore.open_pairs``: how agreement is measured), else two fresh samples of
  the base model. The pair is remembered server-side for the session (``AppContext.pairs``), so a label
  can only be given to a pair the server handed out, never to text the client makes up.
- ``save_label``: ``AppContext.gate(request, "label")`` (joined, not removed, rate and caps), then the
  label is appended and fsynced, and the pair is forgotten (a double click cannot label it twice).

No layout here; refusals are ``limits.LimitError`` / ``ValueError`` with one line (the callers turn
them into ``gr.Error``).
"""

from __future__ import annotations

import random
import threading
import uuid

from rlhf_demo.classroom import limits
from rlhf_demo.classroom.roster import feedback_question
from rlhf_demo.data.feedback import FeedbackStore, make_pairs
from rlhf_demo.data.pair_bank import BANK, SETTING, labelled_pairs, load_bank
from rlhf_demo.data.pair_pool import PairPool
from rlhf_demo.data.prompts import builtin_prompts
from rlhf_demo.models.loading import DEFAULT_MODEL, GGUF_FILE, embedded_gguf_path
from rlhf_demo.shared_work import MODEL_LOCK, SharedWork
from rlhf_demo.ui.context import AppContext, session_of

SHARE_P = 0.5
"""On a shared server, the chance that the next pair is one another person labelled (when there is one)."""
CHOICES = {"a": "A", "b": "B", "tie": "tie", "skip": "skip"}
NO_PAIR = "no pair on your screen by that id: draw one first (New pair, or /feedback_pair)"
PAIRS = SharedWork(max_items=16, cache_size=1, ttl_s=0.0)
"""Fresh pairs of everyone who asks at once come from one batched ``generate`` (one model computation at a
time with the other tabs: ``shared_work.MODEL_LOCK``)."""
POOLED = SETTING
"""(response tokens, temperature) of the pairs drawn ahead on a shared server: the Feedback tab's defaults."""
POOL_SIZE = 32
"""Fresh pairs kept ahead: a class's first draws; refilled by halves (one batch of 16 pairs, 32 rows ×
16 tokens). 64 measured no better in the lesson (label p95 21.2 s against 16.0 s: docs/lesson.md)."""
_pools: dict[int, PairPool] = {}  # id(bundle) → its pool (one base model in practice)
_POOLS_MU = threading.Lock()


def _random_item() -> tuple[str, int]:
    """A training prompt and how many of its tokens open the pair (3–8)."""
    return random.choice(builtin_prompts("train")), random.randint(3, 8)


def _bank(ctx: AppContext) -> list:
    """The shipped bank's pairs (``data.pair_bank``) when the base model is the embedded one it was sampled
    from, less those the class's label file already has; else []."""
    if embedded_gguf_path() is None:
        return []
    return load_bank(BANK, model=GGUF_FILE, response_tokens=POOLED[0], temperature=POOLED[1], labelled=labelled_pairs(store(ctx).records()))


def pool(ctx: AppContext) -> PairPool:
    """The pool of fresh pairs drawn ahead for ``POOLED`` settings (``data.pair_pool``), one per base model,
    starting with the shipped bank's pairs when they are this model's (``data.pair_bank``)."""
    bundle = ctx.registry.get(DEFAULT_MODEL)

    def make(n: int) -> list:
        with MODEL_LOCK:  # one model computation at a time, like every other request's
            return make_pairs(
                bundle.model, bundle.tokenizer, [_random_item() for _ in range(n)], response_tokens=POOLED[0], temperature=POOLED[1]
            )

    with _POOLS_MU:
        if id(bundle) in _pools:
            return _pools[id(bundle)]
        _pools.clear()  # a pool holds its model: keep the current base model's only
        _pools[id(bundle)] = PairPool(make, size=POOL_SIZE, low=POOL_SIZE // 2, batch=POOL_SIZE // 2, ahead=_bank(ctx))
        return _pools[id(bundle)]


def warm(ctx: AppContext) -> None:
    """On a shared server, start drawing pairs ahead (a page joined: the class will label soon). Returns
    at once: the model loads, if it must, in the background too."""
    if ctx.classroom():
        threading.Thread(target=lambda: pool(ctx).refill(), name="pair-pool-warm", daemon=True).start()


def store(ctx: AppContext) -> FeedbackStore:
    return FeedbackStore(ctx.feedback_path())


def counts(ctx: AppContext, request) -> dict:
    """{"you": your counts, "class": everyone's} (A, B, tie, skip, pairs, total)."""
    s = store(ctx)
    return {"you": s.counts(ctx.user(request).id), "class": s.counts()}


def draw_pair(ctx: AppContext, request, response_tokens: int = 16, temperature: float = 1.0) -> dict:
    """{"pair_id", "prompt", "a", "b", "shared", "question"} for this session (``shared``: another person
    labelled it; ``question``: what the class is asked, set by the teacher: ``roster.feedback_question``)."""
    user = ctx.gate(request, "pair")
    s = store(ctx)
    others = s.open_pairs(user.id) if ctx.classroom() else []
    if others and random.random() < SHARE_P:
        p = others[0]
        pair = {"pair_id": p["pair_id"], "prompt": p["prompt"], "a": p["response_a"], "b": p["response_b"], "shared": True}
    elif ctx.classroom() and (int(response_tokens), float(temperature)) == POOLED and (ahead := pool(ctx).take()) is not None:
        q, a, b = ahead
        pair = {"pair_id": uuid.uuid4().hex[:12], "prompt": q, "a": a, "b": b, "shared": False}
    else:
        bundle = ctx.registry.get(DEFAULT_MODEL)
        item = _random_item()
        group = (int(response_tokens), float(temperature))

        def run_batch(items):
            return make_pairs(bundle.model, bundle.tokenizer, items, response_tokens=group[0], temperature=group[1])

        q, a, b = PAIRS.run(uuid.uuid4().hex, group, item, run_batch)
        pair = {"pair_id": uuid.uuid4().hex[:12], "prompt": q, "a": a, "b": b, "shared": False}
    pair["question"] = feedback_question(ctx.runs_dir)
    ctx.hand_out(session_of(request), pair)
    return pair


def save_label(ctx: AppContext, request, pair_id, choice) -> dict:
    """Label the pair ``pair_id`` this session was handed with ``choice`` (a, b, tie or skip); returns ``counts``."""
    which = CHOICES.get(str(choice).strip().lower()) if isinstance(choice, str) else None
    if which is None:
        raise limits.LimitError(f"choice must be one of {', '.join(CHOICES)}, got {str(choice)[:20]!r}")
    session = session_of(request)
    pair = ctx.handed(session)
    if pair is None or not isinstance(pair_id, str) or pair_id != pair["pair_id"]:
        raise limits.LimitError(NO_PAIR)
    user = ctx.gate(request, "label")
    store(ctx).add(
        pair["prompt"],
        pair["a"],
        pair["b"],
        which,
        labeller=user.id,
        pair_id=pair["pair_id"],
        nickname=user.nickname,
        question=pair["question"],
    )
    ctx.hand_out(session, None)
    return counts(ctx, request)
