"""``python -m rlhf_demo kl``: per-token KL(π‖π_ref) of a response, exact and estimated (k1, k2, k3).

    python -m rlhf_demo kl --prompt "The movie was" --response " great fun" --json
    python -m rlhf_demo kl --policy runs/my-run/policy --prompt "The movie was"   # the policy writes

JSON: {"tokens": [{"token", "logp_policy", "logp_ref", "k1", "k2", "k3", "kl_exact"}, ...],
       "total": {"k1", "k2", "k3", "kl_exact"}}, one entry per response token (see kl_analysis.py).
"""

from __future__ import annotations

import json

from rlhf_demo.kl.analysis import MAX_RESPONSE_TOKENS, KLInputError, token_kl
from rlhf_demo.models.loading import DEFAULT_MODEL, REGISTRY

HELP = "Per-token KL between a policy and a reference on a response: exact over the vocabulary, and k1/k2/k3."


def add_arguments(p):
    p.add_argument("--policy", default=DEFAULT_MODEL, help="policy π: 'default', a local folder (model or LoRA adapter) or a Hub id")
    p.add_argument("--reference", default=DEFAULT_MODEL, help="reference π_ref (default: the embedded default model)")
    p.add_argument("--prompt", required=True, help="the text the response continues")
    p.add_argument("--response", default=None, help="the response to measure (default: sampled from the policy)")
    p.add_argument("--max-new-tokens", type=int, default=24, help=f"length of a generated response (1…{MAX_RESPONSE_TOKENS})")
    p.add_argument("--policy-temperature", type=float, default=1.0, help="π = softmax(policy logits / T) (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling the response")
    p.add_argument("--top", type=int, default=5, help="top candidates shown at the max-KL position (text output)")
    p.add_argument("--json", action="store_true", help="print JSON (the schema in the module docstring)")


def run(args) -> int:
    if args.response is not None and args.response == "":
        raise KLInputError("--response is empty: give a response, or leave the flag out to let the policy write one")
    policy = REGISTRY.get(args.policy)
    reference = REGISTRY.get(args.reference)
    res = token_kl(
        policy,
        reference,
        args.prompt,
        args.response,
        max_new_tokens=args.max_new_tokens,
        policy_temperature=args.policy_temperature,
        seed=args.seed,
        top_n=max(1, args.top),
    )
    if args.json:
        print(json.dumps(res.to_json(), ensure_ascii=False))
        return 0
    print(f"prompt:   {res.prompt!r}")
    print(f"response: {res.response!r}{' (sampled from the policy)' if res.generated else ''}")
    print(f"{'#':>3} {'token':<16} {'log π':>9} {'log π_ref':>9} {'k1':>9} {'k2':>9} {'k3':>9} {'KL exact':>9}")
    for r in res.table.to_dict("records"):
        print(
            f"{r['position']:>3} {r['token']!r:<16} {r['logp_policy']:>9.4f} {r['logp_ref']:>9.4f} "
            f"{r['k1']:>9.4f} {r['k2']:>9.4f} {r['k3']:>9.4f} {r['kl_exact']:>9.4f}"
        )
    t = res.totals
    print(f"{'':>3} {'total':<16} {'':>9} {'':>9} {t['k1']:>9.4f} {t['k2']:>9.4f} {t['k3']:>9.4f} {t['kl_exact']:>9.4f}")
    print(f"\nlargest exact KL at position {res.max_position}; top candidates (π | π_ref):")
    for r in res.top.to_dict("records"):
        print(f"  {r['rank']:>2}. {r['policy_token']!r:<14} {r['policy_p']:.3f} | {r['ref_token']!r:<14} {r['ref_p']:.3f}")
    return 0
