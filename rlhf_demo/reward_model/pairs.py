"""The pairs a reward model trains and is measured on: those TRL keeps (by length), split into training
pairs and a held-out tenth (by position in the source, so every run of a source holds out the same pairs).

The split is by pair, not by prompt: the shipped set cuts one review opening at several lengths, so a
held-out pair's prompt may open a training pair too. The responses differ."""

from __future__ import annotations

from rlhf_demo.rewards.learned import encode


def fit_pairs(pairs: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Pairs whose prompt + chosen and prompt + rejected (each with EOS) are at most ``max_length`` tokens
    (TRL's RewardTrainer drops the others silently); prompt/chosen/rejected only. Returns (kept, n_dropped)."""
    for i, p in enumerate(pairs, 1):
        if not all(isinstance(p.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"pair {i} lacks a text prompt/chosen/rejected")
    kept = [
        {k: p[k] for k in ("prompt", "chosen", "rejected")}
        for p in pairs
        if max(len(encode(tokenizer, p["prompt"] + p[k], 10**9)) for k in ("chosen", "rejected")) <= max_length
    ]
    return kept, len(pairs) - len(kept)


def split_pairs(pairs: list[dict], every: int) -> tuple[list[dict], list[dict]]:
    """(training pairs, held-out pairs): the ``every``-th, 2·``every``-th, ... pair is held out."""
    train = [p for i, p in enumerate(pairs, 1) if i % every]
    heldout = [p for i, p in enumerate(pairs, 1) if not i % every]
    return train, heldout


def prepare_pairs(pairs: list[dict], tokenizer, max_length: int, every: int) -> tuple[list[dict], list[dict], str]:
    """(training pairs, held-out pairs, a note on those dropped); ValueError saying why when a side is empty."""
    if not pairs:
        raise ValueError("no usable examples: the preference set is empty")
    kept, dropped = fit_pairs(pairs, tokenizer, max_length)
    if not kept:
        raise ValueError(f"no usable examples: all {len(pairs)} pairs are longer than max_length = {max_length} tokens; raise max length")
    train, heldout = split_pairs(kept, every)
    if not heldout:
        raise ValueError(
            f"only {len(kept)} usable pairs: holding out every {every}-th leaves none to measure the "
            f"held-out accuracy on; lower heldout_every (≥ 2) or add pairs"
        )
    note = f"{dropped} of {len(pairs)} pairs dropped: longer than max length {max_length} tokens" if dropped else ""
    return train, heldout, note
