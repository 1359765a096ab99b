"""``python -m rlhf_demo preferences --out FILE``: build a synthetic preference set (best vs worst of k
samples from the reference, scored by a reward function) in TRL's prompt/chosen/rejected JSONL format."""

from __future__ import annotations

import sys
import time

from rlhf_demo.cli.flags import add_config_flags, inputs_from_args
from rlhf_demo.data.preferences import SynthConfig

HELP = "Build a synthetic preference set (best vs worst of k reference samples) as prompt/chosen/rejected JSONL."


def add_arguments(p):
    p.add_argument("--out", required=True, help="JSONL file to write (.jsonl; a .csv name writes CSV)")
    p.add_argument(
        "--prompt-file", default=None, help="openings from a .txt/.csv/.jsonl file or hf:DATASET[:COLUMN] instead of the built-in set"
    )
    add_config_flags(p, [SynthConfig])  # --prompts --cuts --samples --response-tokens --temperature --reward --seed
    p.add_argument("--model", default="default", help="reference model that writes the responses (default: the embedded model)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")


def run(args) -> int:
    from pathlib import Path

    import torch

    from rlhf_demo.data.preferences import synthesize_pairs, to_csv, write_jsonl
    from rlhf_demo.data.prompts import load_prompts
    from rlhf_demo.models.loading import load_model
    from rlhf_demo.rewards.functions import make_reward

    out = Path(args.out).expanduser()
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass --overwrite to replace it")
    cfg = SynthConfig.from_inputs(None, inputs_from_args(SynthConfig, args)).validate()
    prompts = load_prompts(args.prompt_file, "train")
    reward = make_reward(cfg.reward)
    t0 = time.time()
    torch.manual_seed(cfg.seed)
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
