"""The knobs every trainer shares, declared once so they carry the same name, help and range in
PPO, DPO and the trainers that come next (``rlhf_demo/config.py`` has the convention)."""

from __future__ import annotations

from rlhf_demo.config import knob

MAX_SECONDS = 4 * 3600


def model_knob(
    help: str = "Policy to start from (and its reference): 'default' (the embedded SmolLM2-135M-Instruct), "
    "a local model folder, a run's policy/ folder or a Hub id.",
):
    return knob("default", help, kind="str", group="Model and LoRA", label="Model")


def reward_knob(what: str):
    return knob(
        "vader-positive",
        f"{what}: vader-positive, vader-negative, length, on-topic, repetition, keyword:WORD, hf:MODEL:LABEL[:logit|prob], "
        "or a weighted sum with spaces around + and - ('0.7*vader-positive + 0.3*on-topic - 0.5*repetition'; "
        "on the command line a spec that starts with '-' is written --reward=SPEC); py:FILE:FUNC = your own "
        "Python function f(texts) -> scores (local use only).",
        kind="str",
        group="Data",
        label="Reward",
    )


def prompts_knob():
    """The training prompts of the trainers that sample their own answers (GRPO, best-of-N distillation)."""
    return knob(
        "builtin",
        "Training prompts: 'builtin' (movie-review openings, held-out ones excluded), a .txt/.csv/.jsonl file, or hf:DATASET[:COLUMN].",
        kind="str",
        group="Data",
        label="Prompts",
        ui=False,
    )


def preferences_knob():
    """The preference pairs of the trainers that learn from pairs (DPO, the reward model)."""
    return knob(
        "shipped",
        "Preference pairs: 'shipped' (the synthetic set in the package), 'feedback' (the "
        "Feedback tab's labels), a .jsonl/.csv file with prompt/chosen/rejected, or hf:DATASET.",
        kind="str",
        group="Data",
        label="Preference pairs",
    )


def query_tokens_knob(group: str):
    return knob(
        (2, 8),
        "Query length in tokens, N or MIN:MAX: each training prompt is cut once to a length drawn uniformly from the range (as PPO's).",
        kind="range",
        lo=1,
        hi=256,
        group=group,
        label="Query tokens (N or MIN:MAX)",
    )


def response_tokens_knob(default: int, help: str, group: str):
    return knob(default, help, kind="int", lo=1, hi=256, group=group, label="Response tokens")


def seed_knob():
    return knob(0, "Random seed (data order, sampling, LoRA initialisation).", kind="int", lo=0, hi=2**31 - 1, group="Run", label="Seed")


def max_seconds_knob():
    return knob(
        0.0,
        f"Training-time budget in seconds (evaluation excluded); 0 = no limit (at most {MAX_SECONDS}). "
        "The run stops before a step that would cross it.",
        kind="float",
        lo=0.0,
        hi=float(MAX_SECONDS),
        group="Run",
        label="Time budget (s of training, 0 = none)",
    )


def steps_knob(default: int, help: str, hi: int):
    """Optimizer steps, at least one (the trainers whose steps are not drawn from epochs)."""
    return knob(default, help, kind="int", lo=1, hi=hi, group="Run", label="Steps")


def epoch_steps_knob(hi: int):
    """Optimizer steps, 0 = from ``epochs`` (the trainers that pass over a fixed set of pairs)."""
    return knob(
        0,
        f"Optimizer steps, at most {hi}; 0 = as many as the epochs need.",
        kind="int",
        lo=0,
        hi=hi,
        group="Run",
        label="Steps (0 = from the epochs)",
    )


def epochs_knob(default: float, help: str):
    return knob(default, help, kind="float", lo=0.01, hi=100.0, group="Run", label="Epochs")


def batch_size_knob(default: int, help: str, label: str, *, lo: int = 1, hi: int):
    return knob(default, help, kind="int", lo=lo, hi=hi, group="Optimisation", label=label)


def max_length_knob(default: int, help: str):
    return knob(default, help, kind="int", lo=4, hi=2048, group="Optimisation", label="Max length (tokens)")


def lr_knob(default: float, help: str):
    return knob(default, help, kind="float", lo=1e-8, hi=0.1, group="Optimisation", label="Learning rate")


def max_grad_norm_knob():
    return knob(1.0, "Gradient clipping (global norm).", kind="float", lo=1e-6, hi=1e6, group="Optimisation", label="Gradient clip (norm)")


def full_finetune_knob():
    return knob(
        False,
        "Train every weight (the reference is a frozen second copy) instead of a LoRA adapter (the "
        "reference is the same model with its adapter switched off).",
        kind="bool",
        group="Model and LoRA",
        label="Full fine-tuning (no LoRA)",
    )


def lora_r_knob():
    return knob(
        8, "LoRA rank (on the attention projections q, k, v, o).", kind="int", lo=1, hi=256, group="Model and LoRA", label="LoRA rank"
    )


def lora_alpha_knob():
    return knob(16, "LoRA alpha: the update is (alpha / r) · B A.", kind="int", lo=1, hi=4096, group="Model and LoRA", label="LoRA alpha")


def eval_every_knob(default: int, unit: str, help: str = ""):
    return knob(
        default,
        help or f"Evaluate on held-out prompts every N {unit} (0 = only at the end).",
        kind="int",
        lo=0,
        hi=100_000,
        group="Evaluation",
        label=f"Held-out evaluation every N {unit} (0 = end only)",
    )


def eval_at_seconds_knob():
    return knob(
        (),
        "Also evaluate when the training clock reaches each of these times (seconds, comma-separated).",
        kind="floats",
        lo=0.001,
        hi=float(MAX_SECONDS),
        group="Evaluation",
        label="Evaluate at (s of training)",
    )


def eval_at_start_knob(
    default: bool,
    help: str = "Evaluate the untrained policy first (step 0), so the curves and the reward-vs-KL plot start at the base model.",
):
    return knob(
        default,
        help,
        kind="bool",
        group="Evaluation",
        label="Evaluate the base first",
    )


def kl_stop_knob(note: str = ""):
    """Early stopping on the held-out KL (the TRL-based trainers: ``training/trl_callback.kl_stop``)."""
    return knob(
        0.0,
        "Stop when the held-out KL(π‖π_ref) passes this many nats per response, and keep the last evaluated "
        f"policy under it (early stopping; 0 = never).{note}",
        kind="float",
        lo=0.0,
        hi=1000.0,
        group="Evaluation",
        label="Stop at held-out KL (0 = never)",
    )


def fine_eval_from_knob(note: str = ""):
    """With a KL stop, evaluate every step from this fraction of it (``training/trl_callback.eval_due``)."""
    return knob(
        0.5,
        "With a KL stop: once the held-out KL passes this fraction of it, evaluate after every step, so the "
        f"policy kept is the last one just under it{note}.",
        kind="float",
        lo=1e-3,
        hi=1.0,
        group="Evaluation",
        label="Evaluate every step from (× KL stop)",
    )


def device_knob():
    return knob(
        "", "Device: '' = CUDA if available, else CPU.", kind="choice", choices=("", "cpu", "cuda"), group="Run", label="Device", ui=False
    )


def dtype_knob():
    return knob(
        "auto",
        "Precision of the frozen weights: auto = bfloat16 on a CUDA GPU that has it, float32 on a CPU; "
        "bfloat16 on a CPU pays only where it has AMX (Intel Xeon 4th gen+: 1.2–1.3x faster PPO updates "
        "measured there: bench/ppo_vs_trl011.py --bf16). LoRA weights, the value head and Adam stay float32.",
        kind="choice",
        choices=("auto", "float32", "bfloat16"),
        group="Run",
        label="Precision",
    )


def report_to_knob():
    return knob(
        "none",
        "Experiment tracker that also receives every metrics record, under the same names as "
        "metrics.jsonl (TRL's report_to): none, trackio (local, into $TRACKIO_DIR) or wandb. A shared server "
        "allows none only.",
        kind="choice",
        choices=("none", "trackio", "wandb"),
        group="Run",
        label="Experiment tracking (report_to)",
    )
