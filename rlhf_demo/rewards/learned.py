"""A learned reward model: a language model with a scalar head, r(text) ∈ ℝ, trained on preference pairs
(``rlhf_demo/reward_model/``; Bradley–Terry: P(chosen ≻ rejected) = σ(r_chosen − r_rejected)).

The model is ``AutoModelForSequenceClassification`` with ``num_labels = 1``: the decoder's last hidden
state at the last non-pad token goes through a linear ``score`` head (no bias). A text is scored as
TRL's ``RewardTrainer`` saw it in training: ``text + EOS``, right-padded, so positions count from 0.
With the default tokenizer EOS is also the pad token, so the score is read at the text's last token.

What a run folder of ``train --algo reward`` holds in ``policy/``: a peft LoRA adapter whose
``task_type`` is ``SEQ_CLS`` (the trained ``score`` head is saved with it, ``modules_to_save``) plus
``base_model.txt`` naming the base. ``load_reward_model`` applies it to
``AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)`` and merges it; a full
sequence-classification model folder with one label loads as it is.

``LearnedReward`` (``rm:RUN_DIR`` in ``functions.make_reward``) scores decoded **text**, re-tokenised
with the reward model's own tokenizer: a policy with another tokenizer can be trained on it.

``rm:goodhart-rm`` (the PPO preset ``goodhart``'s reward, ``data/goodhart.py``) names the run
``goodhart-rm`` when there is one, else (locally) the newest reward-model run of the preset ``goodhart``
under the runs folder: the app names its runs by time (``reward-YYYYmmdd-HHMMSS-…``), so the run the
reward-model panel's Goodhart preset just trained is the one the PPO preset trains on
(:func:`latest_preset_run`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rlhf_demo.algorithms import find
from rlhf_demo.data import goodhart
from rlhf_demo.rewards.functions import RewardError, RewardFunction
from rlhf_demo.runs.names import find_run, runs_root

MAX_TOKENS = 512
"""Longer texts keep their first tokens (and the EOS): this many in all."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def latest_preset_run(preset: str, root: Path | None = None) -> Path | None:
    """The newest reward-model run (an algorithm that makes a reward model, ``algorithms.Algorithm.is_policy``) of ``preset`` directly under ``root``
    (default: the runs folder) that has saved its model (``policy/``), by its config's ``started``
    time, then its name; None when there is none, or on a shared server (a user's runs are theirs)."""
    from rlhf_demo import algorithms
    from rlhf_demo.classroom import limits

    root = Path(root) if root is not None else runs_root()
    if limits.current().shared or not root.is_dir():
        return None
    found = []
    for d in root.iterdir():
        cfg = _read_json(d / "config.json") if d.is_dir() else {}
        alg = algorithms.find(cfg.get("algo"))
        if alg is not None and not alg.is_policy and cfg.get("preset") == preset and (d / "policy").is_dir():
            found.append((str(cfg.get("started") or ""), d.name, d))
    return max(found)[2] if found else None


def find_reward_model(path: str | Path) -> Path:
    """``RUN_DIR`` (a reward-model run), its ``policy/`` folder, or a sequence-classification model
    folder → the folder holding the model; ``RewardError`` in one line saying what the folder is instead."""
    p = Path(path).expanduser()
    if not p.exists() and (run := find_run(str(path))) is not None:  # rm:example-reward, rm:run:NAME (runs/names.py)
        p = run
    elif not p.exists() and str(path).strip() == goodhart.RM_RUN and (run := latest_preset_run(goodhart.PRESET)) is not None:
        p = run  # rm:goodhart-rm: the newest run of the reward-model preset goodhart
    if not str(path).strip():
        raise RewardError("rm: needs a folder: rm:RUN_DIR (a run of `train --algo reward`)")
    if not p.exists():
        raise RewardError(f"reward model folder {str(path)!r} does not exist")
    if not p.is_dir():
        raise RewardError(f"{str(path)!r} is a file, not a reward-model run folder")
    is_run = (p / "metrics.jsonl").exists() and (p / "config.json").exists()
    if is_run:
        algo = _read_json(p / "config.json").get("algo") or "?"
        alg = find(algo)
        if alg is None or alg.is_policy:
            raise RewardError(f"{str(path)!r} is a {algo.upper()} run (a policy), not a reward model: train one with `train --algo reward`")
        if not (p / "policy").is_dir():
            raise RewardError(f"{str(path)!r}: the reward-model run has saved no model yet (no policy/)")
    model_dir = p / "policy" if (p / "policy").is_dir() else p
    adapter = _read_json(model_dir / "adapter_config.json")
    if adapter:
        if adapter.get("task_type") != "SEQ_CLS":
            raise RewardError(
                f"{str(path)!r} holds a {adapter.get('task_type') or 'peft'} adapter (a policy), not a "
                "reward model (a SEQ_CLS adapter with a score head)"
            )
        return model_dir
    config = _read_json(model_dir / "config.json")
    if not config:
        raise RewardError(f"{str(path)!r}: the folder holds no model (no policy/, adapter_config.json or config.json)")
    archs = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        what = (
            "a causal language model"
            if any(a.endswith("ForCausalLM") for a in archs)
            else f"a {', '.join(archs)}"
            if archs
            else "a model of unknown architecture"
        )
        raise RewardError(
            f"{str(path)!r} is {what}, not a reward model (a sequence classifier with one output): train one with `train --algo reward`"
        )
    labels = len(config.get("id2label") or {}) or config.get("num_labels", 2)
    if labels != 1:
        raise RewardError(
            f"{str(path)!r} is a classifier with {labels} labels; a reward model has one output "
            "(for a labelled classifier use hf:MODEL:LABEL)"
        )
    return model_dir


def base_of(adapter_dir: Path) -> str:
    """The base model an adapter applies to: ``base_model.txt``, else peft's ``base_model_name_or_path``."""
    meta = adapter_dir / "base_model.txt"
    if meta.exists():
        return meta.read_text().strip()
    return _read_json(adapter_dir / "adapter_config.json").get("base_model_name_or_path") or "default"


def load_sequence_classifier(name: str, device: torch.device, dtype: torch.dtype = torch.float32):
    """``AutoModelForSequenceClassification`` with one output from a causal LM or a classifier folder
    ('default', a folder, a Hub id), with its tokenizer (pad token set, and the model told which it is).
    Starting from a causal LM, the ``score`` head is new (random, seeded by the caller's RNG) and the LM
    head is dropped: TRL's ``suppress_seqcls_warning`` keeps that expected mismatch quiet."""
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from rlhf_demo.models.loading import ModelLoadError, load_tokenizer, resolve_source

    src = resolve_source(name)
    if (Path(src) / "adapter_config.json").exists():
        raise ModelLoadError(f"{name!r} is a LoRA adapter; start a reward model from a full model folder, 'default' or a Hub id")
    try:
        with suppress_seqcls_warning():
            model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1, dtype=dtype, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - one clear line
        raise ModelLoadError(
            f"could not load {name!r} as a reward model: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    tok = load_tokenizer(src)
    model.config.pad_token_id = tok.pad_token_id  # the head reads the last non-pad token
    return model.to(device), tok


def load_reward_model(path: str | Path, device: torch.device | str | None = None):
    """A trained reward model for inference: (model in eval mode with frozen weights, tokenizer)."""
    from rlhf_demo.models.loading import ModelLoadError, default_device

    model_dir = find_reward_model(path)
    dev = torch.device(device) if device else default_device()
    try:
        if (model_dir / "adapter_config.json").exists():
            from peft import PeftModel

            base, tok = load_sequence_classifier(base_of(model_dir), dev)
            model = PeftModel.from_pretrained(base, str(model_dir)).merge_and_unload()
        else:
            model, tok = load_sequence_classifier(str(model_dir), dev)
    except ModelLoadError as exc:
        raise RewardError(f"reward model {str(path)!r}: {exc}") from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok


def encode(tokenizer, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
    """``text + EOS`` as TRL's RewardTrainer tokenises a completion (no special tokens added otherwise
    by this tokenizer), cut to ``max_tokens`` keeping the EOS."""
    ids = tokenizer(text + (tokenizer.eos_token or ""))["input_ids"]
    return ids if len(ids) <= max_tokens else ids[: max_tokens - 1] + ids[-1:]


@torch.no_grad()
def score_texts(model, tokenizer, texts: list[str], batch_size: int = 32, max_tokens: int = MAX_TOKENS) -> list[float]:
    """r(text) for each text: batched, no gradient, right-padded, on the model's device."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        for start in range(0, len(texts), batch_size):
            ids = [encode(tokenizer, t, max_tokens) for t in texts[start : start + batch_size]]
            T = max(len(x) for x in ids)
            input_ids = torch.tensor([x + [pad] * (T - len(x)) for x in ids], device=device)  # [b, T]
            mask = torch.tensor([[1] * len(x) + [0] * (T - len(x)) for x in ids], device=device)  # [b, T]
            r = model(input_ids=input_ids, attention_mask=mask).logits.squeeze(-1)  # [b]
            out += r.float().tolist()
    finally:
        model.train(was_training)
    return out


class LearnedReward(RewardFunction):
    """``rm:RUN_DIR``: the reward model a ``train --algo reward`` run saved, scoring query + response text.

    The texts are decoded strings, re-tokenised with the reward model's tokenizer, so the policy's
    tokenizer may differ from it. The model is frozen (no gradient ever reaches it) and runs on
    ``device`` (default: CUDA if available, else CPU; the PPO trainer passes its own)."""

    def __init__(self, path: str, device=None, batch_size: int = 32):
        super().__init__(f"rm:{path}")
        self.model, self.tokenizer = load_reward_model(path, device)
        self.batch_size = batch_size

    def score(self, texts):
        scores = score_texts(self.model, self.tokenizer, texts, self.batch_size)
        return scores, [{"reward_model": s} for s in scores]
