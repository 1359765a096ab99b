"""Best-of-N of the reference on the held-out queries: the Runs frontier's practical baseline.

For each held-out query the evaluation uses (``evaluate.heldout_queries``: the first ``--prompts``
held-out openings cut to the evaluation's query length), sample ``--samples`` (64) responses of the
reference (the untrained default model) with the evaluation's response length and temperature, from one
``torch.Generator`` seeded with ``--seed``, and score query + response with the evaluation's reward
(VADER positive, ``rewards.functions.score_pairs`` as ``evaluate_policy`` does). Then for
N = 2, 4, …, 64:

    gain(N)     = mean over queries of  E[best of N of the query's samples] − mean of its samples
    kl_bound(N) = log N − (N − 1)/N      (best-of-N's KL to the reference is at most this)

with ``runs.compare.expected_best_of_n`` (the unbiased estimator over the samples, no resampling
noise) and ``decoding.best_of_n.kl_bound``. Writes ``rlhf_demo/assets/best_of_n.json`` (read by
``runs.compare.best_of_n_points``; the Runs tab draws the points beside π*'s curve) with the machine,
date, model, prompt count and seed.

    flock /tmp/rlhf-cpu.lock .venv/bin/python scripts/make_best_of_n.py        # ≈ 6 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NS = (2, 4, 8, 16, 32, 64)


def machine() -> str:
    """The CPU's model name and the threads used (what the timing was measured on)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs visible"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=64, help="reference samples per query (N_max)")
    ap.add_argument("--prompts", type=int, default=32, help="held-out queries (the evaluation uses 32)")
    ap.add_argument("--seed", type=int, default=27, help="seed of the sampler's torch.Generator")
    ap.add_argument("--reward", default="vader-positive", help="the evaluation's reward")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "rlhf_demo" / "assets" / "best_of_n.json"))
    args = ap.parse_args()

    import torch

    from rlhf_demo.decoding.best_of_n import kl_bound
    from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses
    from rlhf_demo.evaluate import EvalConfig, heldout_queries
    from rlhf_demo.models.loading import load_model
    from rlhf_demo.rewards.functions import make_reward, score_pairs
    from rlhf_demo.runs.compare import expected_best_of_n

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    bundle = load_model(args.model, device="cpu")
    reward_fn = make_reward(args.reward)
    ecfg = EvalConfig(n_prompts=args.prompts, samples_per_prompt=1)
    rng = torch.Generator().manual_seed(args.seed)  # one stream for the whole run
    scores: list[list[float]] = []
    queries = heldout_queries(bundle.tokenizer, ecfg)
    for i, q in enumerate(queries):
        batch = sample_responses(
            bundle.model, bundle.tokenizer, [q] * args.samples, ecfg.response_tokens, temperature=ecfg.temperature, generator=rng
        )
        row = score_pairs(reward_fn, decode_queries(bundle.tokenizer, batch), decode_responses(bundle.tokenizer, batch))
        scores.append([float(x) for x in row])
        print(
            f"  query {i + 1}/{len(queries)}: mean {sum(row) / len(row):+.3f}, max {max(row):+.3f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    reference = sum(map(sum, scores)) / sum(map(len, scores))
    points = []
    for n in (n for n in NS if n <= args.samples):
        gain = sum(expected_best_of_n(row, n) - sum(row) / len(row) for row in scores) / len(scores)
        points.append({"n": n, "gain": round(gain, 4), "kl_bound": round(kl_bound(n), 4)})
        print(f"  best of {n:>2}: gain {gain:+.3f}, KL ≤ {kl_bound(n):.2f} nats")
    seconds = time.perf_counter() - t0
    record = {
        "what": "Best-of-N of the reference on the held-out queries: gain = E[best of N] − E_ref[r] per query "
        "(the unbiased estimator over the samples, runs.compare.expected_best_of_n), averaged over queries; "
        "kl_bound = log N − (N − 1)/N, the most KL(best-of-N ‖ reference) can be.",
        "made_by": f"python scripts/make_best_of_n.py --samples {args.samples} --prompts {args.prompts} --seed {args.seed} "
        f"--reward {args.reward} --model {args.model} --threads {args.threads}",
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{machine()}, {args.threads} threads",
        "seconds": round(seconds, 1),
        "model": args.model,
        "reward": args.reward,
        "prompts": len(scores),
        "samples_per_prompt": args.samples,
        "query_tokens": ecfg.query_tokens,
        "response_tokens": ecfg.response_tokens,
        "temperature": ecfg.temperature,
        "seed": args.seed,
        "reference_reward": round(reference, 4),
        "best_of_n": points,
    }
    Path(args.out).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
