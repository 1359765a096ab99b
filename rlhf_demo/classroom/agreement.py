"""How much human labellers agree: the noise in preference data that RLHF's reward models and DPO
learn from (InstructGPT reports ~73 % agreement between its labellers).

Each pair ``i`` labelled by ``n_i ≥ 2`` different people, ``n_ik`` of whom chose label ``k`` (A, B or
tie; skips carry no judgement, and a labeller's last label of a pair counts):

    observed agreement   P_o = Σ_i Σ_k n_ik (n_ik − 1) / Σ_i n_i (n_i − 1)      (share of agreeing pairs of labellers)
    chance agreement     P_e = Σ_k p_k²,  p_k = Σ_i n_ik / Σ_i n_i              (two labels drawn at random)
    Fleiss' kappa        κ   = (P_o − P_e) / (1 − P_e)                          (1 = always agree, 0 = chance)
"""

from __future__ import annotations

from collections import Counter, defaultdict

JUDGEMENTS = ("A", "B", "tie")


def votes_by_pair(records: list[dict]) -> dict[str, dict[str, str]]:
    """pair id → {labeller → their last judgement (A/B/tie)}; records without a pair id or labeller are left out."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for r in records:
        pid, who, label = r.get("pair_id"), r.get("labeller"), r.get("label")
        if pid and who and label in JUDGEMENTS:
            out[pid][who] = label
    return dict(out)


def agreement(records: list[dict]) -> dict:
    """{"pairs": pairs with ≥ 2 labellers, "labels": their labels, "observed": P_o, "chance": P_e,
    "kappa": κ} (None where undefined: no pair has two labellers, or every label is the same)."""
    multi = [Counter(v.values()) for v in votes_by_pair(records).values() if len(v) >= 2]
    n_labels = sum(sum(c.values()) for c in multi)
    out = {"pairs": len(multi), "labels": n_labels, "observed": None, "chance": None, "kappa": None}
    if not multi:
        return out
    agree = sum(n * (n - 1) for c in multi for n in c.values())
    total = sum(m * (m - 1) for m in (sum(c.values()) for c in multi))
    p_o = agree / total
    share = Counter()
    for c in multi:
        share.update(c)
    p_e = sum((n / n_labels) ** 2 for n in share.values())
    out.update(observed=p_o, chance=p_e, kappa=(p_o - p_e) / (1 - p_e) if p_e < 1 else None)
    return out


def majority(votes: dict[str, str]) -> str | None:
    """The pair's A/B majority among its labellers' A/B votes (None on a tie of votes or no A/B vote)."""
    c = Counter(v for v in votes.values() if v in ("A", "B"))
    if c["A"] == c["B"]:
        return None
    return "A" if c["A"] > c["B"] else "B"
