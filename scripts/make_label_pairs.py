"""Make the bank of pairs to label (``rlhf_demo/assets/label_pairs.json``, read by ``data/pair_bank.py``):
``--pairs`` pairs of the embedded default model at the Feedback tab's pooled setting, each two samples for
a training prompt opened at 3–8 tokens, exactly as a live draw makes them (``data.feedback.make_pairs``),
seeded (``--seed``: the prompts through ``random.Random``, the samples through ``torch.Generator``).

    flock /tmp/rlhf-cpu.lock .venv/bin/python scripts/make_label_pairs.py     # 512 pairs ≈ 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe  # noqa: E402  (bench/machine.py)

from rlhf_demo.data.feedback import make_pairs  # noqa: E402
from rlhf_demo.data.pair_bank import BANK, SETTING  # noqa: E402
from rlhf_demo.data.prompts import builtin_prompts  # noqa: E402
from rlhf_demo.models.loading import GGUF_FILE, load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32, help="pairs per generate call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=BANK)
    args = ap.parse_args()
    bundle = load_model()
    rng = random.Random(args.seed)
    prompts = builtin_prompts("train")
    t0, pairs = time.perf_counter(), []
    for k in range(0, args.pairs, args.batch):
        items = [(rng.choice(prompts), rng.randint(3, 8)) for _ in range(min(args.batch, args.pairs - k))]
        made = make_pairs(
            bundle.model, bundle.tokenizer, items, response_tokens=SETTING[0], temperature=SETTING[1], seed=args.seed * 1_000 + k
        )
        pairs += [list(p) for p in made]
        print(f"{len(pairs)}/{args.pairs} pairs · {time.perf_counter() - t0:.0f} s", flush=True)
    bank = {
        "model": GGUF_FILE,
        "response_tokens": SETTING[0],
        "temperature": SETTING[1],
        "seed": args.seed,
        "made": date.today().isoformat(),
        "machine": describe(),
        "pairs": pairs,
    }
    args.out.write_text(json.dumps(bank, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(pairs)} pairs, {args.out.stat().st_size / 1e3:.0f} kB, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
