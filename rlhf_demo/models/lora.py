"""A trainable policy and its reference, the same way for every trainer.

- LoRA (default): a peft adapter on the attention projections (q, k, v, o), optionally on the top N
  decoder layers only; the reference is the *same* model with its adapter switched off, so no second
  copy is held (``reference()`` is a context manager).
- Full fine-tuning: every weight trains; the reference is a frozen second copy.

``TrainablePolicy.save(dir)`` writes a policy that ``models.loading.load_model`` reads back: a peft
adapter with its tokenizer and ``base_model.txt`` (the base it applies to, by name: 'default',
``example-ppo``, ``run:NAME``, a Hub id), or a full model with its tokenizer, in safetensors, written
into a temporary folder first and then renamed, so a reader never sees half a policy. The adapter's
``adapter_config.json`` and model card name the base by its Hub id (``loading.hub_id``), never a
server path, so peft's ``AutoPeftModelForCausalLM`` and ``AutoTokenizer`` load a downloaded policy
(or reward model) anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf_demo.models.loading import DEFAULT_MODEL, hub_id, load_model
from rlhf_demo.runs.names import model_short

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class TrainablePolicy:
    model: torch.nn.Module  # a peft model (LoRA) or the plain model (full fine-tuning)
    tokenizer: object
    base_name: str  # what the policy started from ('default', a folder, a Hub id)
    device: torch.device
    frozen_reference: torch.nn.Module | None = None  # full fine-tuning only
    lora_first_layer: int | None = None  # LoRA on layers [first, L) only, else None

    @property
    def is_lora(self) -> bool:
        return self.frozen_reference is None

    @contextmanager
    def reference(self):
        """The reference π_ref: the policy with its adapter switched off, or the frozen copy."""
        if self.frozen_reference is not None:
            yield self.frozen_reference
        else:
            with self.model.disable_adapter():
                yield self.model

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write the policy to ``path`` atomically (a sibling temporary folder, then a rename); ``meta``
        goes to ``checkpoint.json`` inside it."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp, safe_serialization=True)
        self.tokenizer.save_pretrained(tmp)
        if self.is_lora:
            (tmp / "base_model.txt").write_text(_portable(self.base_name) + "\n")
            name_base_by_hub_id(tmp, hub_id(self.base_name))
        if meta:
            (tmp / "checkpoint.json").write_text(json.dumps(meta) + "\n")
        old = path.with_name(f".{path.name}.old{os.getpid()}")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
        return path


def _portable(base: str) -> str:
    """A base model name a later process can load: a run's policy by its short name (``example-ppo``,
    ``run:NAME``), other folders as absolute paths (local use), other names as given."""
    short = model_short(base)
    if short != base:
        return short
    if base != DEFAULT_MODEL and Path(base).expanduser().exists():
        return str(Path(base).expanduser().resolve())
    return base


def name_base_by_hub_id(adapter_dir: str | Path, hub: str) -> None:
    """Write ``hub`` as the base in a saved adapter's ``adapter_config.json`` and model card (peft writes
    the base model's local folder there)."""
    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    old = cfg.get("base_model_name_or_path")
    cfg["base_model_name_or_path"] = hub
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    card = adapter_dir / "README.md"
    if card.exists() and old and old != hub:
        card.write_text(card.read_text(encoding="utf-8").replace(old, hub), encoding="utf-8")


def decoder_layers_owner(model) -> torch.nn.Module | None:
    """The module whose ``layers`` attribute is the decoder's ModuleList (Llama-style models), else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    layers = getattr(inner, "layers", None)
    return inner if isinstance(layers, torch.nn.ModuleList) else None


def num_layers(model) -> int:
    owner = decoder_layers_owner(model)
    return len(owner.layers) if owner is not None else 0


def lora_targets(model) -> list[str] | None:
    """The attention projections by name when the model has them (Llama-style), else peft's default
    for the architecture (e.g. GPT-2's fused ``c_attn``)."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    return [t for t in ATTENTION if t in names] if {"q_proj", "v_proj"} <= names else None


def build_policy(
    model_name: str,
    *,
    full_finetune: bool = False,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_layers: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> TrainablePolicy:
    """Load a fresh training copy of ``model_name`` (never the shared read-only one) as a policy.

    ``lora_layers`` N > 0: LoRA only on the top N decoder layers (the trunk below is then identical
    for the policy and the reference: ``ppo/trunk.py``). The LoRA initialisation is seeded with
    ``seed`` without touching the global RNG's stream for anybody else (``torch.random.fork_rng``)."""
    say = progress or (lambda f, m: None)
    dev = torch.device(device) if device else None
    say(0.1, f"Loading a training copy of {model_name}…")
    bundle = load_model(model_name, device=dev, dtype=dtype)
    base = bundle.model
    if full_finetune:
        say(0.4, "Loading a frozen reference copy…")
        reference = load_model(model_name, device=bundle.device, dtype=bundle.dtype).model.eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        for p in base.parameters():
            p.requires_grad_(True)
        return TrainablePolicy(base, bundle.tokenizer, model_name, bundle.device, frozen_reference=reference)

    from peft import get_peft_model

    cfg = lora_config(base, lora_r, lora_alpha, lora_layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(base, cfg)
    first = cfg.layers_to_transform[0] if cfg.layers_to_transform else None
    return TrainablePolicy(model, bundle.tokenizer, model_name, bundle.device, lora_first_layer=first)


def lora_config(model, r: int, alpha: int, top_layers: int = 0):
    """peft's LoraConfig for ``model``: rank r, scale alpha / r, no dropout, on the attention
    projections, on the top ``top_layers`` decoder layers only when 0 < top_layers < L."""
    from peft import LoraConfig

    L = num_layers(model)
    top = top_layers if 0 < top_layers < L else 0
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=lora_targets(model),
        layers_to_transform=list(range(L - top, L)) if top else None,
        layers_pattern="layers" if top else None,
    )
