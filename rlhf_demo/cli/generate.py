"""``python -m rlhf_demo generate``: continue a prompt and show every step's distribution.

With ``--json`` one object: ``{"model", "sequences": [{"text", "steps": [{"token", "token_id", "prob",
"raw_prob", "entropy", "top": [{"token", "token_id", "raw_prob", "prob"}]}]}]}`` where ``raw_prob`` is
the plain softmax of the logits, ``prob`` the probability after every logits processor, ``entropy``
the raw distribution's entropy (nats) and ``top`` the N most probable candidates after processing.
Without it, a readable table per sequence.

``--strategy best-of-n --num-return-sequences N --reward SPEC`` draws N samples and shows them best first
by the reward SPEC (a builder spec, as ``train --reward``: ``--reward "on-topic - 0.5*repetition"``;
default vader-positive), each with its ``score``; the first notice names the reward, the pick and the
KL bound. Every flag comes from ``DecodingConfig``'s knobs (``decoding/config.py``).
"""

from __future__ import annotations

import json
import sys

from rlhf_demo.cli.flags import add_config_flags, inputs_from_args
from rlhf_demo.decoding.generate import BEST_OF_N, DecodingConfig, GenerationResult, check_prompt, generate

HELP = "Generate text and show each step's token probabilities (raw softmax vs after decoding processors)."


def add_arguments(p):
    p.add_argument("--prompt", required=True, help="text for the model to continue")
    p.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M-Instruct), a local folder or a Hub id")
    add_config_flags(p, [DecodingConfig])  # every decoding knob, with its help and range (decoding/config.py)
    p.add_argument("--greedy", action="store_true", help="greedy decoding (same as --strategy greedy or --temperature 0)")
    p.add_argument("--top", type=int, default=5, help="candidates listed per step (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def config_from_args(args) -> DecodingConfig:
    """The flags given on top of the defaults (the ``plain`` preset), the same path as the Playground's
    widgets (``DecodingConfig.from_inputs``). Without ``--strategy``: ``--greedy`` is greedy decoding and
    ``--num-beams`` above 1 beam search."""
    inputs = inputs_from_args(DecodingConfig, args)
    if inputs["strategy"] is None:
        inputs["strategy"] = "greedy" if args.greedy else "beam" if (args.num_beams or 1) > 1 else None
    elif args.greedy and inputs["strategy"] != "greedy":
        raise ValueError(f"--greedy contradicts --strategy {inputs['strategy']}")
    return DecodingConfig.from_inputs(None, inputs)


def _show(text: str) -> str:
    return repr(text)[1:-1] if text else "''"


def format_table(result: GenerationResult) -> str:
    cfg = result.config
    mode = f"best of {len(result.sequences)} by {cfg.reward}" if cfg.strategy == BEST_OF_N else result.mode
    lines = [
        f"model: {result.model}   mode: {mode}   generated in {result.seconds:.2f} s",
        "processors (in order): " + (" → ".join(result.processors) or "none"),
    ]
    lines += [f"note: {n}" for n in result.notices]
    lines.append(f"prompt: {_show(result.prompt_text)}")
    for i, seq in enumerate(result.sequences):
        extra = f"   score {seq.score:.3f}" if seq.score is not None else ""
        lines += [
            "",
            f"sequence {i + 1}: {_show(seq.text)}",
            f"  cumulative log-prob {seq.cum_logprob:.3f}{extra}",
            f"  {'step':>4}  {'token':<14} {'prob':>7} {'raw':>7} {'entropy':>7}  top candidates: prob (raw)",
        ]
        for t, s in enumerate(seq.steps):
            top = "  ".join(f"{_show(c.token)} {c.prob:.1%} ({c.raw_prob:.1%})" for c in s.top)
            lines.append(f"  {t:>4}  {_show(s.token)[:14]:<14} {s.prob:>7.1%} {s.raw_prob:>7.1%} {s.entropy:>7.2f}  {top}")
    return "\n".join(lines)


def run(args) -> int:
    from rlhf_demo.models.loading import REGISTRY

    if not 1 <= args.top <= 50:
        raise ValueError("--top must be between 1 and 50")
    cfg = config_from_args(args).validate()  # clear errors before a model is loaded
    check_prompt(args.prompt)
    bundle = REGISTRY.get(args.model)
    result = generate(bundle, args.prompt, cfg, top_n=args.top)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, ensure_ascii=False, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
    return 0
