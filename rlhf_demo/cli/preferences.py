"""``python -m rlhf_demo preferences --out FILE``: build a synthetic preference set (best vs worst of k
samples from the reference, scored by a reward function) in TRL's prompt/chosen/rejected JSONL format."""

from __future__ import annotations

import sys
import time

HELP = "Build a synthetic preference set (best vs worst of k reference samples) as prompt/chosen/rejected JSONL."


def add_arguments(p):
    p.add_argument("--out", required=True, help="JSONL file to write (.jsonl; a .csv name writes CSV)")
    p.add_argument(
        "--prompts", type=int, default=None, help="number of built-in training openings to use (default: all of the training split)"
    )
    p.add_argument(
        "--prompt-file", default=None, help="openings from a .txt/.csv/.jsonl file or hf:DATASET[:COLUMN] instead of the built-in set"
    )
    p.add_argument("--samples", type=int, default=4, help="k responses sampled per query; chosen = best, rejected = worst (default 4)")
    p.add_argument("--cuts", type=int, default=3, help="random 2–8-token prefixes cut from each opening (default 3)")
    p.add_argument("--response-tokens", type=int, default=12, help="tokens per sampled response (default 12)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--reward", default="vader-positive", help="reward that ranks the samples (default vader-positive)")
    p.add_argument("--model", default="default", help="reference model that writes the responses (default: the embedded model)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")


def run(args) -> int:
    from pathlib import Path

    import torch

    from rlhf_demo.data.preferences import SynthConfig, synthesize_pairs, to_csv, write_jsonl
    from rlhf_demo.data.prompts import load_prompts
    from rlhf_demo.models.loading import load_model
    from rlhf_demo.rewards.functions import make_reward

    out = Path(args.out).expanduser()
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass --overwrite to replace it")
    cfg = SynthConfig(
        n_prompts=args.prompts,
        cuts_per_prompt=args.cuts,
        samples=args.samples,
        response_tokens=args.response_tokens,
        temperature=args.temperature,
        reward=args.reward,
        seed=args.seed,
    ).validate()
    prompts = load_prompts(args.prompt_file, "train")
    reward = make_reward(args.reward)
    t0 = time.time()
    torch.manual_seed(args.seed)
    bundle = load_model(args.model)
    last = [0.0]

    def progress(frac, msg):
        if not args.quiet and (time.time() - last[0] > 2 or frac >= 1):
            last[0] = time.time()
            print(f"[{frac:5.0%}] {msg}", file=sys.stderr, flush=True)

    rows = synthesize_pairs(bundle.model, bundle.tokenizer, reward, cfg, prompts, progress)
    if not rows:
        raise RuntimeError("every query's samples scored the same: no preference pairs; try more --samples")
    if out.suffix.lower() == ".csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(to_csv(rows), encoding="utf-8")
    else:
        write_jsonl(rows, out)
    mean_c = sum(r["chosen_score"] for r in rows) / len(rows)
    mean_r = sum(r["rejected_score"] for r in rows) / len(rows)
    print(f"wrote {len(rows)} pairs to {out} in {time.time() - t0:.0f} s (mean {cfg.reward} chosen {mean_c:+.3f}, rejected {mean_r:+.3f})")
    return 0
