"""How much held-out reward could *any* policy buy per nat of KL? The KL-regularised optimum, estimated.

For each held-out evaluation query (the same ones ``evaluate.py`` uses), sample N responses from the
reference (the untrained default model) and score them. Those N samples stand for π_ref, so the
optimum of E[r] − β·KL(π‖π_ref) (``theory.py``: π*(y) ∝ π_ref(y)·exp(r(y)/β)) is the samples reweighted
by softmax(r/β). For each β this prints π*'s held-out reward gain over the reference and its KL
(averaged over queries), and best-of-n (gain, and its KL bound log n − (n − 1)/n), the frontier a
PPO run can be compared with: PPO's evaluated (gain, KL) pairs lie below it.

The reweighted estimate is good while KL ≪ log N (N = 128: up to about 3 nats); beyond that it
under-states both the KL and the gain.

    flock /tmp/rlhf-bench.lock .venv/bin/python bench/ppo_frontier.py --n 128

``--json rlhf_demo/assets/pi_star.json`` also writes the small curve the Runs tab's frontier draws
(β, gain over the reference, KL per point; best-of-n; how it was made): ``runs/compare.py: pi_star_curve``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def best_of_n_gain(rewards, n: int) -> float:
    """Expected max of n draws without replacement from each row of ``rewards`` [P, N], minus the row
    mean, averaged over rows: P(max = k-th smallest) = C(k−1, n−1) / C(N, n)."""
    import torch

    s, _ = rewards.double().sort(1)
    N = s.shape[1]
    k = torch.arange(1, N + 1, dtype=torch.float64)
    logc = lambda a, b: torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)  # noqa: E731
    p = torch.where(
        k >= n, (logc(k - 1, torch.tensor(n - 1.0)) - logc(torch.tensor(float(N)), torch.tensor(float(n)))).exp(), torch.zeros(())
    )
    return float(((s * p).sum(1) - s.mean(1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="reference samples per query")
    ap.add_argument("--reward", default="vader-positive")
    ap.add_argument("--prompts", type=int, default=32, help="held-out queries (the evaluation uses 32)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="", help="also write the π* curve (no per-sample rewards) to this file")
    args = ap.parse_args()

    import torch

    from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses
    from rlhf_demo.evaluate import EvalConfig, heldout_queries
    from rlhf_demo.models.loading import load_model
    from rlhf_demo.rewards.functions import make_reward
    from rlhf_demo.theory.optimal import beta_sweep

    torch.set_num_threads(args.threads)
    b = load_model("default", device="cpu")
    reward_fn = make_reward(args.reward)
    ecfg = EvalConfig(n_prompts=args.prompts, samples_per_prompt=1)
    t0 = time.perf_counter()
    rewards = []
    for i, q in enumerate(heldout_queries(b.tokenizer, ecfg)):
        row = []
        for start in range(0, args.n, 64):
            m = min(64, args.n - start)
            batch = sample_responses(
                b.model, b.tokenizer, [q] * m, ecfg.response_tokens, temperature=ecfg.temperature, seed=99 + 1000 * i + start
            )
            texts = [a + c for a, c in zip(decode_queries(b.tokenizer, batch), decode_responses(b.tokenizer, batch))]
            row += [float(x) for x in reward_fn(texts)]
        rewards.append(row)
        print(
            f"  query {i + 1}/{args.prompts}: mean {sum(row) / len(row):+.3f}, max {max(row):+.3f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    R = torch.tensor(rewards, dtype=torch.float64)  # [P, N]
    uniform = torch.zeros(args.n, dtype=torch.float64)  # the samples stand for π_ref
    betas = [1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.025, 0.02]
    sweeps = [beta_sweep(uniform, R[p], betas) for p in range(R.shape[0])]
    base = float(R.mean())
    print(
        f"\nreference on these queries: mean reward {base:+.3f} over {R.numel()} samples; "
        f"{float((R > 0.5).double().mean()):.1%} of them score above 0.5"
    )
    print(f"{'β':>6} {'gain':>7} {'KL':>6} {'gain/nat':>9}   (π* ∝ π_ref·exp(r/β), reweighted samples)")
    rows = []
    for j, beta in enumerate(betas):
        gain = sum(s["expected_reward"][j] for s in sweeps) / len(sweeps) - base
        kl = sum(s["kl"][j] for s in sweeps) / len(sweeps)
        rows.append({"beta": beta, "gain": gain, "kl": kl})
        print(f"{beta:>6.2f} {gain:>+7.3f} {kl:>6.2f} {gain / kl if kl > 0 else float('nan'):>9.3f}")
    print(f"{'n':>6} {'gain':>7} {'KL ≤':>6}   (best of n reference samples)")
    bon = []
    for n in (2, 4, 8, 16, 32, 64):
        if n <= args.n:
            bon.append({"n": n, "gain": best_of_n_gain(R, n), "kl_bound": math.log(n) - (n - 1) / n})
            print(f"{n:>6} {bon[-1]['gain']:>+7.3f} {bon[-1]['kl_bound']:>6.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"frontier-{args.reward}-n{args.n}.json").write_text(
        json.dumps({"n": args.n, "base": base, "optimum": rows, "best_of_n": bon, "rewards": rewards})
    )
    if args.json:
        Path(args.json).write_text(json.dumps(pi_star_record(args, base, rows, bon, time.perf_counter() - t0), indent=1))
        print(f"wrote {args.json}")


def pi_star_record(args, base: float, rows: list[dict], bon: list[dict], seconds: float) -> dict:
    """The shipped curve: what it is, how it was made, and the points (no per-sample rewards)."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return {
        "what": "KL-regularised optimum pi*(y) ∝ pi_ref(y)·exp(r(y)/β) on the held-out queries, estimated by "
        "reweighting n reference samples per query with softmax(r/β); gain = E_pi*[r] − E_ref[r], KL = "
        "KL(pi*‖pi_ref) per response, both averaged over queries. Good while KL ≪ log n; past that it "
        "under-states both.",
        "made_by": f"python bench/ppo_frontier.py --n {args.n} --reward {args.reward} --prompts {args.prompts} --json {args.json}",
        "commit": commit,
        "seconds": round(seconds, 1),
        "reward": args.reward,
        "n": args.n,
        "prompts": args.prompts,
        "reference_reward": round(base, 4),
        "kl_reliable_below": round(math.log(args.n) - 2.0, 2),
        "optimum": [{k: round(v, 4) for k, v in r.items()} for r in rows],
        "best_of_n": [{k: round(v, 4) for k, v in r.items()} for r in bon],
    }


if __name__ == "__main__":
    main()
