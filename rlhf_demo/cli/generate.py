"""``python -m rlhf_demo generate``: continue a prompt and show every step's distribution.

With ``--json`` one object: ``{"model", "sequences": [{"text", "steps": [{"token", "token_id", "prob",
"raw_prob", "entropy", "top": [{"token", "token_id", "raw_prob", "prob"}]}]}]}`` where ``raw_prob`` is
the plain softmax of the logits, ``prob`` the probability after every logits processor, ``entropy``
the raw distribution's entropy (nats) and ``top`` the N most probable candidates after processing.
Without it, a readable table per sequence.
"""

from __future__ import annotations

import json
import sys

from rlhf_demo.decoding.generate import DecodingConfig, GenerationResult, check_prompt, generate, parse_word_bias

HELP = "Generate text and show each step's token probabilities (raw softmax vs after decoding processors)."


def add_arguments(p):
    d = DecodingConfig()
    h = DecodingConfig.help()
    p.add_argument("--prompt", required=True, help="text for the model to continue")
    p.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M-Instruct), a local folder or a Hub id")
    p.add_argument("--temperature", type=float, default=d.temperature, help=h["temperature"])
    p.add_argument("--top-k", type=int, default=d.top_k, help=h["top_k"])
    p.add_argument("--top-p", type=float, default=d.top_p, help=h["top_p"])
    p.add_argument("--min-p", type=float, default=d.min_p, help=h["min_p"])
    p.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty, help=h["repetition_penalty"])
    p.add_argument("--no-repeat-ngram-size", type=int, default=d.no_repeat_ngram_size, help=h["no_repeat_ngram_size"])
    p.add_argument("--num-beams", type=int, default=1, help="beam search with B beams when B > 1 (all beams are printed)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=h["max_new_tokens"])
    p.add_argument("--min-new-tokens", type=int, default=d.min_new_tokens, help=h["min_new_tokens"])
    p.add_argument("--num-return-sequences", type=int, default=d.num_samples, help=h["num_samples"])
    p.add_argument("--seed", type=int, default=d.seed, help=h["seed"])
    p.add_argument("--greedy", action="store_true", help="greedy decoding (same as --temperature 0)")
    p.add_argument("--word-bias", default="", help="bias words, e.g. 'great:5,terrible:-10' (transformers' sequence_bias)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--top", type=int, default=5, help="candidates listed per step (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def config_from_args(args) -> DecodingConfig:
    strategy = "greedy" if args.greedy else ("beam" if args.num_beams > 1 else "sample")
    return DecodingConfig(
        strategy=strategy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        num_beams=args.num_beams if args.num_beams > 1 else DecodingConfig().num_beams,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens,
        num_samples=args.num_return_sequences,
        seed=args.seed,
        word_bias=parse_word_bias(args.word_bias),
        chat_template=args.chat,
    )


def _show(text: str) -> str:
    return repr(text)[1:-1] if text else "''"


def format_table(result: GenerationResult) -> str:
    lines = [
        f"model: {result.model}   mode: {result.mode}   generated in {result.seconds:.2f} s",
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
