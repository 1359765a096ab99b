"""DPO: learn straight from preference pairs with ``trl.DPOTrainer`` (Rafailov et al. 2023,
https://arxiv.org/abs/2305.18290), one metrics record per optimizer step.

For a prompt x with a chosen response y_c and a rejected one y_r, DPO's loss (``loss_type="sigmoid"``) is

    h   = (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))
    L   = −log σ(β · h)

where log π(y|x) sums the response tokens' log-probabilities (EOS included). TRL logs the
"implicit rewards" r_c = β(log π(y_c) − log π_ref(y_c)) as ``rewards/chosen`` (likewise
``rewards/rejected``), their difference as ``rewards/margins``, the fraction of pairs with r_c > r_r as
``rewards/accuracies``, and the raw sums log π(y) as ``logps/chosen`` / ``logps/rejected``.
The loss only asks for the *margin* to grow: both log-probabilities may fall, the rejected one
faster — "the chosen reward goes down" is normal (see ``CHOSEN_GOES_DOWN``).

Every ``eval_every`` steps (and at given training-clock marks) the policy is evaluated on held-out
prompts with the same reward function and KL estimate as PPO (``evaluate.evaluate_policy``); the
evaluation time is kept off the training clock (``time_s``).

What is simplified here:
- Plain-text continuations only (no chat template): the prompt is a review opening and the
  responses continue it. TRL re-tokenises prompt+response, so token ids can differ slightly from the
  sampled ones.
- One process, one device, no gradient accumulation, constant learning rate by default.
- LoRA by default; its reference is the same model with the adapter switched off (no second copy).
  Full fine-tuning keeps a frozen copy as the reference.
- The reference log-probabilities are computed once before training (``precompute_ref``), so each
  step is one forward+backward of the policy.
- The run stops at the end of the epochs/steps, at a time budget, when asked to (after the current
  step), or when the held-out KL passes ``kl_target`` (checked at each evaluation): then the last
  evaluated policy under the target is put back (early stopping), since DPO's KL keeps climbing.
"""
from __future__ import annotations

import math
import queue
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import torch

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down",
              "sigmoid_norm", "discopop", "exo_pair")
"""The single loss types of TRL 1.16's DPOTrainer offered here (``sigmoid`` is the DPO paper's)."""

TRL_KEYS = ("loss", "grad_norm", "learning_rate", "rewards/chosen", "rewards/rejected", "rewards/margins",
            "rewards/accuracies", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected",
            "entropy", "mean_token_accuracy", "num_tokens", "epoch")
EVAL_KEYS = ("reward_mean", "reward_std", "reward_sem", "kl", "kl_k1", "distinct2")

CHOSEN_GOES_DOWN = (
    "**Why can the chosen reward go down?** DPO only asks the *margin* β·[(log π(chosen) − log π_ref(chosen)) − "
    "(log π(rejected) − log π_ref(rejected))] to grow. Pushing the rejected response down is the easiest way, "
    "and the two responses share most of their words, so the chosen log-probability is often dragged down too: "
    "both curves fall, the rejected one faster, and the margin and accuracy still rise. The lost probability mass "
    "goes to other responses, which is why the held-out KL keeps growing."
)

MAX_STEPS = 10_000
MAX_PAIRS = 20_000


@dataclass
class DPOSettings:
    """Everything a DPO run needs (plain defaults; ``PRESETS`` holds the tuned settings)."""

    model: str = "default"
    """policy to start from (and reference): 'default', a local folder or a Hub id"""
    beta: float = 0.1
    """β: temperature of the implicit reward; larger β keeps the policy closer to the reference"""
    loss_type: str = "sigmoid"
    """TRL loss: 'sigmoid' is the DPO paper's −log σ(β h); 'ipo', 'hinge', 'robust', ... are variants"""
    sft_weight: float = 0.0
    """weight of an extra NLL loss on the chosen responses (TRL's 'sft' term, as in RPO, Pang et al. 2024):
    keeps log π(chosen) from falling; 0 = plain DPO"""
    label_smoothing: float = 0.0
    """probability that a label is flipped ('robust'; 'exo_pair' needs > 0, e.g. 1e-3)"""
    learning_rate: float = 5e-4
    """AdamW learning rate (LoRA takes ~100× larger rates than full fine-tuning)"""
    epochs: float = 1.0
    """passes over the preference pairs (ignored when steps is set)"""
    steps: int | None = None
    """optimizer steps; None = as many as the epochs need"""
    batch_size: int = 8
    """pairs per optimizer step"""
    max_length: int = 32
    """tokens of prompt+response kept; pairs whose prompt alone is this long are dropped"""
    full_finetune: bool = False
    """train every weight (with a frozen copy as reference) instead of a LoRA adapter"""
    lora_r: int = 8
    """LoRA rank (adapter size)"""
    lora_alpha: int = 16
    """LoRA scale numerator: the update is (alpha / r) · B A"""
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj"
    """comma-separated module names that get LoRA adapters ('all-linear' for every linear layer)"""
    precompute_ref: bool = True
    """compute the reference log-probabilities once before training (saves a forward per step)"""
    gradient_checkpointing: bool = False
    """trade compute for memory (≈2.5× slower on CPU for small LoRA runs)"""
    max_grad_norm: float = 1.0
    """gradient clipping norm"""
    seed: int = 0
    """seed of the LoRA init, data order and everything random"""
    eval_every: int = 10
    """held-out evaluation every N steps (0 = only at the start and the end)"""
    eval_at_seconds: tuple = ()
    """also evaluate when the training clock first passes each of these marks (seconds)"""
    eval_at_start: bool = True
    """evaluate the untrained policy first (step 0), so the curves start at the base model"""
    eval_reward: str = "vader-positive"
    """reward function for held-out evaluation (the same one PPO trains on)"""
    kl_target: float | None = None
    """stop when the held-out KL(π‖π_ref) passes this many nats per response, and keep the last evaluated
    policy that was under it (None = never)"""
    fine_eval_from: float = 0.5
    """with a KL target: once the held-out KL passes this fraction of the target, evaluate after every
    step, so the policy kept is the last one just under the target (DPO's KL can jump ~0.4 nats a step)"""
    max_seconds: float | None = None
    """training-time budget in seconds (evaluation excluded); None = no budget"""

    def validate(self) -> "DPOSettings":
        if not (isinstance(self.beta, (int, float)) and 0 < self.beta <= 10 and math.isfinite(self.beta)):
            raise ValueError(f"β must be in (0, 10], got {self.beta}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown DPO loss {self.loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
        if self.loss_type == "exo_pair" and self.label_smoothing <= 0:
            raise ValueError("the exo_pair loss needs label smoothing > 0 (the EXO paper uses 1e-3)")
        if not 0 <= self.sft_weight <= 10:
            raise ValueError(f"SFT weight must be in [0, 10], got {self.sft_weight}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate <= 1e-2):
            raise ValueError(f"learning rate must be in (0, 0.01], got {self.learning_rate}")
        if self.steps is not None and not (isinstance(self.steps, int) and 1 <= self.steps <= MAX_STEPS):
            raise ValueError(f"steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        if self.steps is None and not 0 < self.epochs <= 100:
            raise ValueError(f"epochs must be in (0, 100], got {self.epochs}")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 128):
            raise ValueError(f"batch size must be between 1 and 128 pairs, got {self.batch_size}")
        if not (isinstance(self.max_length, int) and 4 <= self.max_length <= 2048):
            raise ValueError(f"max length must be between 4 and 2048 tokens, got {self.max_length}")
        if not 1 <= self.lora_r <= 256 or self.lora_alpha <= 0:
            raise ValueError(f"LoRA rank must be in [1, 256] and alpha > 0 (got r={self.lora_r}, alpha={self.lora_alpha})")
        if not self.lora_targets.strip():
            raise ValueError("LoRA target modules are empty")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be ≥ 0, got {self.eval_every}")
        if self.kl_target is not None and not self.kl_target > 0:
            raise ValueError(f"KL target must be > 0 nats, got {self.kl_target}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"time budget must be > 0 seconds, got {self.max_seconds}")
        if not 0 < self.fine_eval_from <= 1:
            raise ValueError(f"fine_eval_from must be in (0, 1], got {self.fine_eval_from}")
        return self


PRESETS: dict[str, DPOSettings] = {
    # batch 4: twice the steps per minute of batch 8 for about the same movement per step (Adam); lr 1e-3
    # because lr 5e-4 moved the held-out reward by only ~+0.1 in 3 minutes here. The held-out KL is checked
    # every 4 steps, and every step once it passes 0.5 × 6 nats; past 6 nats (the course's budget) the run
    # stops and keeps the last policy under it (DPO's KL keeps climbing).
    "Quick CPU demo": DPOSettings(batch_size=4, learning_rate=1e-3, epochs=3, eval_every=4, kl_target=6.0,
                                  max_seconds=180),
    "Push hard (lr 2e-3): watch the KL run away": DPOSettings(learning_rate=2e-3, epochs=2, eval_every=10),
    "IPO loss": DPOSettings(loss_type="ipo", beta=0.5, learning_rate=5e-4),
    "Full fine-tuning (all weights)": DPOSettings(full_finetune=True, learning_rate=1e-5, batch_size=4),
}
DEFAULT_PRESET = "Quick CPU demo"



def field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field (cleanrl style), for help texts in the UI and CLI."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for a, b in zip(body, body[1:]):
        if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
            docs[a.target.id] = " ".join(b.value.value.split())
    return docs


FIELD_HELP = field_docs(DPOSettings)


def preset(name: str | None, **overrides) -> DPOSettings:
    """A preset's settings with ``overrides`` applied (None values are ignored)."""
    name = name or DEFAULT_PRESET
    if name not in PRESETS:
        raise ValueError(f"unknown DPO preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


# ---------------------------------------------------------------------------------------------
# data checks
# ---------------------------------------------------------------------------------------------

def usable_pairs(pairs: list[dict], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Pairs TRL will keep: those whose tokenised prompt is shorter than ``max_length`` (TRL drops the
    others silently, and fails obscurely when it drops them all). Returns (kept, n_dropped)."""
    kept = [p for p in pairs if len(tokenizer(p["prompt"], add_special_tokens=True)["input_ids"]) < max_length]
    return kept, len(pairs) - len(kept)


def _check_pairs(pairs: list[dict], tokenizer, settings: DPOSettings) -> tuple[list[dict], str]:
    if not pairs:
        raise ValueError("no usable examples: the preference set is empty")
    if len(pairs) > MAX_PAIRS:
        raise ValueError(f"{len(pairs)} preference pairs; the limit is {MAX_PAIRS}")
    for i, p in enumerate(pairs, 1):
        if not all(isinstance(p.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise ValueError(f"pair {i} lacks a text prompt/chosen/rejected")
    kept, dropped = usable_pairs(pairs, tokenizer, settings.max_length)
    if not kept:
        raise ValueError(
            f"no usable examples: all {len(pairs)} pairs have a prompt of at least max_length = "
            f"{settings.max_length} tokens, so no response token would be left to train on; raise max length"
        )
    note = f"{dropped} of {len(pairs)} pairs dropped: prompt ≥ max length {settings.max_length} tokens" if dropped else ""
    return [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in kept], note


# ---------------------------------------------------------------------------------------------
# the training loop: DPOTrainer in a worker thread, one record per step handed back
# ---------------------------------------------------------------------------------------------

@dataclass
class _Clock:
    """Training time with evaluation (and setup) excluded."""

    start: float = 0.0
    paused: float = 0.0

    def begin(self):
        self.start, self.paused = time.perf_counter(), 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start - self.paused


def _make_callback(settings, evaluate, out_q, stop_event, clock, state):
    from transformers import TrainerCallback

    marks = sorted(settings.eval_at_seconds)

    class DPOStream(TrainerCallback):
        def on_train_begin(self, args, st, control, **kw):
            if settings.eval_at_start:
                ev = evaluate()
                out_q.put({"step": 0, "time_s": 0.0, "epoch": 0.0, **ev})
            clock.begin()

        def on_step_end(self, args, st, control, **kw):
            t = clock.now()
            if stop_event.is_set():
                state["status"], state["message"] = "stopped", f"stopped at step {st.global_step}"
                control.should_training_stop = True
            elif settings.max_seconds is not None and t >= settings.max_seconds:
                state["status"], state["message"] = "finished", f"time budget of {settings.max_seconds:.0f} s reached at step {st.global_step}"
                control.should_training_stop = True
            return control

        def on_log(self, args, st, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:  # Trainer's end-of-training summary
                return control
            rec = {"step": st.global_step, "time_s": round(clock.now(), 3)}
            rec.update({k: logs[k] for k in TRL_KEYS if k in logs})
            rec.update({k: v for k, v in logs.items() if k not in rec and isinstance(v, (int, float))})
            loss = logs.get("loss")
            if loss is None or not math.isfinite(loss):
                state["status"], state["message"] = "diverged", f"diverged at step {st.global_step} (loss is {loss})"
                control.should_training_stop = True
                out_q.put(rec)
                return control
            user_stop = state.get("status") == "stopped"
            last = control.should_training_stop
            due = settings.eval_every > 0 and st.global_step % settings.eval_every == 0
            near = state.get("last_kl") is not None and settings.kl_target is not None and \
                state["last_kl"] >= settings.fine_eval_from * settings.kl_target
            due = due or near
            while marks and rec["time_s"] >= marks[0]:
                marks.pop(0)
                due = True
            if (due or last) and not user_stop:
                ev = evaluate()
                rec.update(ev)
                state["last_kl"] = ev["kl"]
                if settings.kl_target is not None:
                    self._kl_stop(st.global_step, ev, kw["model"], control)
            out_q.put(rec)
            return control

        def _kl_stop(self, step, ev, model, control):
            """Early stopping on the held-out KL: remember the last policy under the target; once the
            target is passed, stop and put that policy back (LoRA: ~1M numbers to copy)."""
            params = [p for p in model.parameters() if p.requires_grad]
            if ev["kl"] < settings.kl_target:
                state["snapshot"] = (step, [p.detach().clone() for p in params],
                                     {k: v for k, v in ev.items() if not k.startswith("_")})
                return
            msg = f"held-out KL {ev['kl']:.2f} passed the target {settings.kl_target} at step {step}"
            if "snapshot" in state:
                k, saved, ev_k = state.pop("snapshot")
                with torch.no_grad():
                    for p, v in zip(params, saved):
                        p.copy_(v)
                msg += f"; restored the policy of step {k} (held-out reward {ev_k['reward_mean']:+.3f}, KL {ev_k['kl']:.2f})"
                state["restored"] = {"step": k, **ev_k}
            state["status"], state["message"] = "finished", msg
            control.should_training_stop = True

    return DPOStream()


def train_dpo(settings: DPOSettings, pairs: list[dict], *, policy=None, reference=None, reward_fn=None,
              policy_dir: str | Path | None = None, stop_event: threading.Event | None = None,
              eval_config=None, device=None, progress=None) -> Iterator[dict]:
    """Train with DPO and yield one record per optimizer step (see the module docstring).

    ``policy``: a ModelBundle to train in place (default: a fresh copy of ``settings.model``; never pass
    a shared model). ``reference``: a ModelBundle for full fine-tuning (default: another fresh copy).
    The first record is ``{"event": "setup", ...}``; step records follow (``step``, ``time_s``, TRL's
    keys, and on evaluation steps ``eval/...`` plus ``reward_mean``/``kl``); the last is
    ``{"event": "end", "status", "message", "_model" (the trained, peft-wrapped model), ...}``. Closing the generator stops training after the
    current step. With ``policy_dir`` the trained policy (LoRA adapter + ``base_model.txt``, or the
    full model) is saved there before the end record.
    """
    from rlhf_demo.evaluate import EvalConfig, evaluate_policy
    from rlhf_demo.models.loading import default_device, load_model
    from rlhf_demo.rewards.functions import make_reward

    settings = replace(settings).validate()
    say = progress or (lambda f, m: None)
    stop_event = stop_event or threading.Event()
    dev = torch.device(device) if device is not None else (policy.device if policy is not None else default_device())
    t_setup = time.perf_counter()
    torch.manual_seed(settings.seed)
    if policy is None:
        say(0.05, "loading a trainable copy of the policy…")
        policy = load_model(settings.model, device=dev, dtype=torch.float32)
    tokenizer = policy.tokenizer
    train_rows, note = _check_pairs(pairs, tokenizer, settings)
    reward_fn = reward_fn or make_reward(settings.eval_reward)
    if settings.full_finetune and reference is None:
        say(0.15, "loading a frozen reference copy…")
        reference = load_model(settings.model, device=dev, dtype=torch.float32)
    if reference is not None:
        for p in reference.model.parameters():
            p.requires_grad_(False)
        reference.model.eval()

    out_q: queue.Queue = queue.Queue()
    state: dict = {"status": "finished", "message": ""}
    clock = _Clock()
    trainer_box: dict = {}

    def evaluate() -> dict:
        t0 = time.perf_counter()
        model = trainer_box["trainer"].model
        ev = evaluate_policy(model, tokenizer, reward_fn, eval_config or EvalConfig(),
                             reference=None if reference is None else reference.model)
        dt = time.perf_counter() - t0
        clock.paused += dt
        rec = {f"eval/{k}": ev[k] for k in EVAL_KEYS}
        rec.update(reward_mean=ev["reward_mean"], kl=ev["kl"], eval_s=round(dt, 2), _samples=ev["samples"])
        return rec

    def worker():
        try:
            trainer = _build_trainer(settings, policy, reference, tokenizer, train_rows, dev, say)
            trainer_box["trainer"] = trainer
            trainer.add_callback(_make_callback(settings, evaluate, out_q, stop_event, clock, state))
            out_q.put({"event": "setup", "pairs": len(train_rows), "note": note,
                       "max_steps": _planned_steps(settings, len(train_rows)),
                       "setup_s": round(time.perf_counter() - t_setup, 2),
                       "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)})
            trainer.train()
            state["steps"] = trainer.state.global_step
            state["_model"] = trainer.model
            state["time_s"] = round(clock.now(), 2)
            if policy_dir is not None and trainer.state.global_step > 0:
                save_policy(trainer.model, tokenizer, policy_dir, settings.model)
                state["policy_dir"] = str(policy_dir)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            state["error"] = exc
        finally:
            out_q.put(None)

    thread = threading.Thread(target=worker, name="dpo-train", daemon=True)
    thread.start()
    try:
        while True:
            rec = out_q.get()
            if rec is None:
                break
            yield rec
    finally:
        stop_event.set()  # a consumer that walks away stops the run after the current step
        thread.join()
    if "error" in state:
        exc = state["error"]
        if isinstance(exc, (ValueError, RuntimeError)):
            raise exc
        raise RuntimeError(f"DPO training failed: {type(exc).__name__}: {exc}") from exc
    yield {"event": "end", "status": state["status"], "message": state["message"] or f"completed {state.get('steps', 0)} steps",
           **{k: state[k] for k in ("steps", "time_s", "policy_dir", "restored", "_model") if k in state}}


def _planned_steps(settings: DPOSettings, n_pairs: int) -> int:
    if settings.steps is not None:
        return settings.steps
    return max(1, math.ceil(math.ceil(n_pairs / settings.batch_size) * settings.epochs))


def _build_trainer(settings: DPOSettings, policy, reference, tokenizer, rows, dev, say):
    """Configure trl.DPOTrainer for this machine (bf16 and gradient checkpointing off on CPU)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    cuda = dev.type == "cuda"
    workdir = tempfile.mkdtemp(prefix="rlhf-dpo-")
    cfg = DPOConfig(
        output_dir=workdir,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        num_train_epochs=settings.epochs,
        max_steps=settings.steps if settings.steps is not None else -1,
        beta=settings.beta,
        loss_type=[settings.loss_type] + (["sft"] if settings.sft_weight > 0 else []),
        loss_weights=[1.0, settings.sft_weight] if settings.sft_weight > 0 else None,
        label_smoothing=settings.label_smoothing,
        max_length=settings.max_length,
        precompute_ref_log_probs=settings.precompute_ref,
        precompute_ref_batch_size=32,
        activation_checkpointing=settings.gradient_checkpointing,  # TRL defaults it on; 2.5× slower here
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        fp16=False,
        use_cpu=not cuda,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=settings.seed,
        data_seed=settings.seed,
        dataloader_num_workers=0,
    )
    peft_config = None
    if not settings.full_finetune:
        from peft import LoraConfig

        targets = settings.lora_targets.strip()
        peft_config = LoraConfig(
            r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
            target_modules="all-linear" if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
        )
    say(0.3, "tokenising pairs" + (" and computing reference log-probabilities…" if settings.precompute_ref else "…"))
    import datasets

    datasets.disable_progress_bars()
    trainer = DPOTrainer(
        model=policy.model,
        ref_model=None if reference is None else reference.model,
        args=cfg,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # we report the records ourselves
    return trainer


def save_policy(model, tokenizer, path: str | Path, base_name: str) -> Path:
    """Save a trained policy: a peft LoRA adapter (+ ``base_model.txt``) or a full model, as safetensors."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    if hasattr(model, "peft_config"):
        (path / "base_model.txt").write_text(base_name + "\n")
    else:
        tokenizer.save_pretrained(path)
    return path


def settings_dict(settings: DPOSettings) -> dict:
    d = asdict(settings)
    d["eval_at_seconds"] = list(settings.eval_at_seconds)
    return d


def run_to_folder(settings: DPOSettings, pairs: list[dict], writer, *, preference_source: str = "",
                  **kwargs) -> Iterator[dict]:
    """``train_dpo`` writing into a ``runs.RunWriter``: every step record to metrics.jsonl, evaluation
    samples to samples.jsonl, the policy to ``policy/``, the outcome to summary.json. Yields the records."""
    status, message = "failed", ""
    inner = train_dpo(settings, pairs, policy_dir=writer.policy_dir, **kwargs)
    try:
        for rec in inner:
            if rec.get("event") == "end":
                status, message = rec["status"], rec["message"]
            elif "step" in rec:
                samples = rec.pop("_samples", None)
                writer.log_metrics(rec)
                if samples:
                    writer.log_samples(rec["step"], samples)
                    rec["_samples"] = samples
            yield rec
    except GeneratorExit:
        status, message = "stopped", "stopped by the user"
        raise
    except Exception as exc:
        status, message = "failed", str(exc)
        raise
    finally:
        inner.close()  # stops the trainer after the current step (the policy is still saved)
        writer.finish(status, message, preferences=preference_source)
        writer.close()
