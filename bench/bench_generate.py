"""Benchmark: the playground's generation (every step's raw/processed distributions, entropy, top
candidates and stored raw logits) against a plain ``model.generate`` of the same tokens, same run.

    .venv/bin/python bench/bench_generate.py [--tokens 32] [--reps 5] [--samples 1] [--threads N]

Prints the median wall time of each and their ratio (target ≤ 1.10). The two are interleaved so
machine load hits both alike, and the generated tokens are checked to be identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from rlhf_demo.decoding.generate import DecodingConfig, encode_prompt, generate, generation_config  # noqa: E402
from rlhf_demo.models.loading import REGISTRY  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompt", default="The movie was")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default); 1 is steadier on a busy machine")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = REGISTRY.get(args.model)
    # min_new_tokens = max_new_tokens: both runs make exactly the same number of tokens.
    cfg = DecodingConfig(
        temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=args.tokens, min_new_tokens=args.tokens, num_samples=args.samples, seed=0
    ).validate(bundle.model.config.vocab_size)
    ids = torch.tensor([encode_prompt(bundle.tokenizer, args.prompt, cfg, bundle.context_length).ids], device=bundle.device)

    def plain():
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(cfg.seed)
            t0, c0 = time.perf_counter(), time.process_time()
            out = bundle.model.generate(
                ids, attention_mask=torch.ones_like(ids), generation_config=generation_config(cfg, bundle.tokenizer)
            )
            cpu["plain"].append(time.process_time() - c0)
            return time.perf_counter() - t0, out[:, ids.shape[1] :].tolist()

    def playground():
        t0, c0 = time.perf_counter(), time.process_time()
        res = generate(bundle, args.prompt, cfg, top_n=10, keep_logits=True)
        total = time.perf_counter() - t0
        cpu["playground"].append(time.process_time() - c0)
        extra.append(total - res.seconds)  # everything the playground adds outside model.generate()
        return total, [s.token_ids for s in res.sequences]

    extra: list[float] = []
    cpu: dict[str, list[float]] = {"plain": [], "playground": []}  # process CPU time: less hurt by other load
    plain(), playground()  # warm-up
    t_plain, t_play, ratios = [], [], []
    for i in range(args.reps):
        order = (plain, playground) if i % 2 == 0 else (playground, plain)
        times = {}
        for fn in order:
            times[fn.__name__], toks = fn()
            times[fn.__name__ + "_tokens"] = toks
        assert times["plain_tokens"] == times["playground_tokens"], "the two runs generated different tokens"
        t_plain.append(times["plain"])
        t_play.append(times["playground"])
        ratios.append(times["playground"] / times["plain"])
        print(f"rep {i}: plain {times['plain']:.3f} s   playground {times['playground']:.3f} s   ratio {ratios[-1]:.3f}")
    mp, mq = statistics.median(t_plain), statistics.median(t_play)
    n_tok = args.tokens * args.samples
    print(
        f"\nmodel {bundle.name} on {bundle.device} ({torch.get_num_threads()} threads), {args.samples} × {args.tokens} tokens, {args.reps} reps"
    )
    print(f"plain model.generate : {mp:.3f} s median ({n_tok / mp:.1f} tokens/s)")
    print(f"playground generate  : {mq:.3f} s median ({n_tok / mq:.1f} tokens/s)")
    cp, cq = statistics.median(cpu["plain"][1:]), statistics.median(cpu["playground"][1:])
    print(f"CPU time (median): plain {cp:.3f} s, playground {cq:.3f} s, ratio {cq / cp:.3f}")
    print(f"playground's own work outside generate(): {statistics.median(extra) * 1000:.1f} ms median per call")
    print(
        f"ratio playground / plain: {mq / mp:.3f} (medians; paired-ratio median {statistics.median(ratios):.3f}, "
        f"ratio of fastest runs {min(t_play) / min(t_plain):.3f}; target ≤ 1.10)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
