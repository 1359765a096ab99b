"""A run's model card, and the push of its trained model to the Hugging Face Hub.

``train ... --push-to-hub REPO_ID`` writes ``RUN/policy/README.md`` (the card: base model, data, the
exact command, the held-out figures, the training curves as a table, before → after examples) with
``huggingface_hub.ModelCard``, then uploads ``RUN/policy/`` with ``upload_folder``. Offline
(``HF_HUB_OFFLINE=1``) or without a token the card is still written and one line says that nothing
was pushed; ``push_problem`` says so before training starts.

Reads a finished run folder (``runs/folder.py``).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from rlhf_demo.algorithms import find
from rlhf_demo.runs.folder import read_json, read_metrics

HUB_DEFAULT_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""What ``--model default`` is (``models.loading.HUB_DEFAULT_ID``; that module imports torch)."""
CURVE_ROWS = 10


def command_line(argv: list[str] | None = None) -> str:
    """The command that made this run, as it would be typed again (``accelerate launch`` for several processes)."""
    from rlhf_demo.training import distributed

    args = list(sys.argv[1:] if argv is None else argv)
    n = distributed.world_size()
    cpu = " --cpu" if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") else ""
    head = f"accelerate launch{cpu} --num_processes {n} -m rlhf_demo" if n > 1 else "python -m rlhf_demo"
    return f"{head} {shlex.join(args)}".strip()


def push_problem(repo_id: str) -> str:
    """'' when ``repo_id`` can be pushed from here; otherwise why not, in one line (a bad id is a ValueError)."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"--push-to-hub {repo_id!r} is not a Hub repository id (OWNER/NAME): {exc}") from None
    if "/" not in repo_id:
        raise ValueError(f"--push-to-hub {repo_id!r}: give OWNER/NAME (your user or organisation name first)")
    if constants.HF_HUB_OFFLINE:
        return "offline (HF_HUB_OFFLINE=1)"
    if not get_token():
        return "no Hugging Face token (set HF_TOKEN or run `hf auth login`)"
    return ""


def _base_model(name: str) -> str:
    return HUB_DEFAULT_ID if name in ("default", "") else name


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:+.3f}" if abs(v) < 1000 else f"{v:.4g}"
    return "" if v is None else str(v)


def _heldout(pairs: bool, final: dict) -> list[str]:
    """The final held-out figures: a reward model's on held-out pairs (``pairs``), a policy's on samples."""
    if not final:
        return ["No held-out evaluation was recorded."]
    if pairs:
        rows = [
            ("held-out pair accuracy", final.get("accuracy")),
            ("held-out margin", final.get("margin")),
            ("held-out Bradley–Terry loss", final.get("loss")),
            ("held-out pairs", final.get("n")),
        ]
    else:
        rows = [
            ("held-out reward (mean)", final.get("reward_mean")),
            ("its standard error", final.get("reward_sem")),
            ("held-out gold reward", final.get("gold_reward_mean")),
            ("held-out KL(π‖π_ref), nats per response", final.get("kl")),
            ("distinct-2", final.get("distinct2")),
            ("held-out samples", final.get("n")),
        ]
    return ["| figure | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in rows if v is not None]


def curve_table(run_dir: Path, algo: str, rows: int = CURVE_ROWS) -> list[str]:
    """The training curves (the keys ``Algorithm.card_keys`` names) as a markdown table: at most ``rows``
    steps, evenly spaced, first and last kept."""
    df = read_metrics(run_dir)
    alg = find(algo)
    cols = [c for c in (alg.card_keys if alg else ()) if c in df.columns]
    if df.empty or "step" not in df.columns or not cols:
        return ["No metrics were recorded."]
    df = df[["step", *cols]].groupby("step", as_index=False).last()
    if len(df) > rows:
        idx = sorted({round(i * (len(df) - 1) / (rows - 1)) for i in range(rows)})
        df = df.iloc[idx]
    lines = ["| step | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for rec in df.to_dict("records"):
        lines.append(f"| {int(rec['step'])} | " + " | ".join("" if rec[c] != rec[c] else _fmt(rec[c]) for c in cols) + " |")
    return lines


def card_text(run_dir: str | Path, command: str | None = None) -> str:
    """The model card (YAML metadata + markdown) of a finished run folder."""
    from huggingface_hub import ModelCard, ModelCardData

    run = Path(run_dir)
    cfg, summary = read_json(run / "config.json"), read_json(run / "summary.json")
    algo, base = cfg.get("algo", "?"), _base_model(cfg.get("model", ""))
    alg = find(algo)
    policy = alg is None or alg.is_policy
    peft = (run / "policy" / "adapter_config.json").exists()
    data = (
        f"preference pairs: `{cfg.get('preferences')}` ({summary.get('n_pairs', '?')} pairs"
        + (f", {summary['n_heldout']} held out)" if "n_heldout" in summary else ")")
        if alg is not None and alg.from_pairs
        else f"prompts: `{cfg.get('prompts')}`, reward: `{cfg.get('reward')}`"
    )
    meta = ModelCardData(
        base_model=base,
        library_name="peft" if peft else "transformers",
        pipeline_tag="text-generation" if policy else "text-classification",
        tags=["rlhf-lab", "rlhf", algo if policy else "reward-model", "trl"],
    )
    settings = ", ".join(
        f"{k} {cfg[k]}" for k in ("lr", "beta", "batch_size", "lora_r", "full_finetune", "seed", "num_processes") if k in cfg
    )
    body = [
        f"# {run.name}",
        "",
        f"{alg.what if alg and alg.what else algo}, made with RLHF Lab (`python -m rlhf_demo`).",
        "",
        f"- **Base model:** `{base}`" + (" (a LoRA adapter on it)" if peft else ""),
        f"- **Data:** {data}",
        f"- **Run:** {summary.get('status', '?')}: {summary.get('message', '')}; "
        f"{summary.get('steps', '?')} steps, {float(summary.get('time_s') or 0):.0f} s of training",
        f"- **Settings:** {settings} (all of them: `config.json` of the run)",
        "",
        "## The exact command",
        "",
        "```bash",
        command or cfg.get("command") or "(not recorded)",
        "```",
        "",
        "## Held-out evaluation (at the end)",
        "",
        *_heldout(not policy, summary.get("final_eval") or {}),
        "",
        "## Training curves",
        "",
        *curve_table(run, algo),
        "",
    ]
    examples = read_json(run / "before_after.json") if (run / "before_after.json").exists() else []
    if isinstance(examples, list) and examples:
        body += ["## Before → after (the same held-out queries, same seed)", "", "| query | reference | policy |", "|---|---|---|"]
        body += [
            f"| {r['query']!r} | {r['reference']!r} ({r['reference_reward']:+.2f}) | {r['policy']!r} ({r['policy_reward']:+.2f}) |".replace(
                "\n", " "
            )
            for r in examples[:5]
        ]
        body.append("")
    return ModelCard(f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(body)).content


def write_card(run_dir: str | Path, command: str | None = None) -> Path:
    """``RUN/policy/README.md`` (the folder that is pushed); returns its path."""
    path = Path(run_dir) / "policy" / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card_text(run_dir, command), encoding="utf-8")
    return path


def push(run_dir: str | Path, repo_id: str, command: str | None = None) -> str:
    """Write the card, then push ``RUN/policy/`` to ``repo_id`` when possible; one line says what happened."""
    card = write_card(run_dir, command)
    problem = push_problem(repo_id)
    if problem:
        return f"model card written to {card}; nothing was pushed to {repo_id}: {problem}"
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, exist_ok=True)
    url = upload_folder(repo_id=repo_id, folder_path=str(card.parent), commit_message=f"RLHF Lab run {Path(run_dir).name}")
    return f"pushed {card.parent} to https://huggingface.co/{repo_id} ({url})"
