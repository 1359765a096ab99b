"""PPO hyper-parameters: one dataclass with help text on every field, ``validate()``, and presets.

Names follow TRL's old ``PPOConfig`` where it had one (``init_kl_coef`` is our ``beta``,
``cliprange``, ``cliprange_value``, ``vf_coef``, ``gamma``, ``lam``, ``ppo_epochs``,
``num_mini_batches``, ``target``/``horizon`` of the adaptive KL controller).

Presets
-------
- ``quick-cpu`` (default): the embedded SmolLM2-135M, VADER-positive reward, attention-LoRA r8 on the
  top 8 of 30 layers (the 22 below are shared with the reference and not run again: ``trunk.py``),
  batch 32, 12-token responses, 2 PPO epochs of four mini-batches at lr 1e-3 (eight short Adam steps
  per batch waste less KL on gradient noise than four steps twice as long), a fixed β = 0.03, and a KL budget
  of 5.5 nats on the batch's exact KL that undoes an update which crossed it (then half steps until
  one is accepted), with the last update judged before every evaluation; the value head learns on
  detached hidden states, so the critic costs no KL. The reward climbs steadily while the budget
  holds the policy near the reference, 30 updates ≈ 3–4 minutes of training on a 2-core CPU (see
  ``bench/ppo_learnability.py``). An adaptive β (Ziegler et al.) is an option:
  with short horizons it overshot and dragged the KL and the reward down together (measured).
- ``no-kl``: the same with β = 0 and no budget: the opposite lesson (reward saturates, KL
  explodes, the text collapses into repetitions).
- ``course``: the Hugging Face course setup (``lvwerra/gpt2-imdb`` fine-tuned in full, reward =
  the POSITIVE logit of ``lvwerra/distilbert-imdb``, batch 128, 4 epochs); needs the Hub and a GPU
  to be pleasant.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

MAX_STEPS = 2000
MAX_BATCH = 512
MAX_SECONDS = 4 * 3600


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class PPOConfig:
    # --- what to train, on what -------------------------------------------------------------
    model: str = _f("default", "Policy to start from: 'default' (embedded SmolLM2-135M-Instruct), a local model folder or a Hub id.")
    reward: str = _f("vader-positive", "Reward on query+response text: vader-positive, vader-negative, length, keyword:WORD, hf:MODEL:LABEL[:logit|prob].")
    prompts: str = _f("builtin", "Training prompts: 'builtin' (movie-review openings, held-out ones excluded), a .txt/.csv/.jsonl file, or hf:DATASET[:COLUMN].")
    seed: int = _f(0, "Random seed (prompt order, query/response lengths, sampling, LoRA init).")
    steps: int = _f(30, f"Number of PPO updates (each = one batch of episodes). At most {MAX_STEPS}.")
    max_seconds: float = _f(0.0, "Training-time budget in seconds (evaluation excluded); 0 = no limit. The run stops before an update that would cross it.")

    # --- rollouts -------------------------------------------------------------------------------
    batch_size: int = _f(32, "Episodes (query → response) per update.")
    responses_per_query: int = _f(1, "Answers sampled per query (k): the batch holds batch_size / k queries, each answered k times, and "
                                     "each score is compared with the mean score of the other k − 1 answers to its query (leave-one-out "
                                     "baseline, as in RLOO) before the KL penalty and GAE. This takes out what the query alone decides "
                                     "about the reward, so the advantages are less noisy. 1 = classic PPO (one answer per query).")
    query_min_tokens: int = _f(2, "Each query is a prompt cut to a length drawn uniformly from [min, max] tokens (the course's LengthSampler).")
    query_max_tokens: int = _f(8, "Upper end of the query length range.")
    response_min_tokens: int = _f(12, "Response length is drawn per batch from [min, max] tokens.")
    response_max_tokens: int = _f(12, "Upper end of the response length range. Longer responses hold more sentiment words but cost time.")
    temperature: float = _f(1.0, "Sampling temperature of rollouts (the policy's distribution is logits / temperature). Must be > 0.")
    top_k: int = _f(0, "Top-k filter for rollouts (0 = off, as in the course).")
    top_p: float = _f(1.0, "Nucleus filter for rollouts (1 = off, as in the course).")
    prefix_rewards: bool = _f(False, "Credit each token with what it changed in the score: the reward function also scores the query "
                                     "alone and every prefix query + y_1..y_t, and token t is rewarded Φ_t − Φ_{t−1} (potential-based "
                                     "shaping, Ng et al. 1999: the token rewards add up to score(query+response) − score(query), so the best "
                                     "policy is unchanged). Off = the whole score on the last token (classic). Costs R more reward calls per episode.")
    ban_special_tokens: bool = _f(True, "Suppress EOS/special tokens so every response has the full length (course setup).")

    # --- KL penalty (lm-human-preferences) --------------------------------------------------------
    beta: float = _f(0.03, "KL coefficient β (TRL: init_kl_coef): each response token is rewarded −β·(log π − log π_ref). 0 = no penalty.")
    kl_penalty: str = _f("reward", "Where the KL penalty acts: 'reward' = −β·KL on every token's reward (classic RLHF PPO), or 'loss' = "
                                   "β × the exact per-token KL(π_θ‖π_ref) added to the loss and differentiated directly (GRPO-style, lower variance).")
    kl_estimator: str = _f("k1", "Per-token KL estimate in the penalty: k1 = log π − log π_ref (classic), k3 = (r−1) − log r (never negative).")
    adaptive_kl: bool = _f(False, "Adapt β toward a KL target (Ziegler et al. 2019): β ← β·(1 + clip(KL/target − 1, ±0.2)·batch/horizon).")
    kl_target: float = _f(3.0, "Target KL (nats per response, on the training batch) of the adaptive controller.")
    beta_min: float = _f(0.0, "Floor under β for the adaptive controller (0 = none, as in the paper). A floor keeps β from shrinking while the KL is still small early in a short run.")
    kl_budget: float = _f(5.5, "KL budget (nats per response, exact, on the batch; 0 = none): when a batch shows the policy past it, the "
                               "update is undone (back to the policy before it) and β is multiplied by kl_budget_beta_factor. A trust region around the reference. "
                               "Before an evaluation and at the end, the last update is judged at once on a fresh batch, so the policy evaluated "
                               "and saved is one the budget accepted (measured: its held-out KL then landed 0.3–0.7 nats under the budget).")
    kl_budget_beta_factor: float = _f(1.0, "How much β grows when the KL budget undoes an update (1 = not at all).")
    kl_budget_lr_factor: float = _f(0.5, "Backtracking after an undone update: the learning rate is multiplied by this, and divided by it "
                                          "again (up to lr) each time the budget accepts an update, so the policy creeps up to the budget "
                                          "instead of stalling under it. 1 = off.")
    kl_control_estimate: str = _f("exact", "What the adaptive controller reads: 'exact' = Σ over response positions of the exact KL between the two "
                                           "next-token distributions (both are computed anyway; far less noisy), or 'k1' = Σ(log π − log π_ref) of the sampled tokens (classic).")
    kl_horizon: float = _f(80.0, "Horizon (episodes) of the adaptive controller: smaller = β reacts faster. The paper used 10000 over a far longer run.")

    # --- PPO ---------------------------------------------------------------------------------------
    lr: float = _f(1e-3, "Adam learning rate (LoRA weights and value head). Full fine-tuning wants ~1e-5.")
    ppo_epochs: int = _f(2, "Passes over each batch of episodes.")
    num_mini_batches: int = _f(4, "Mini-batches per epoch (batch_size must divide evenly). More, shorter Adam steps per batch: "
                                  "the gradient noise of the steps partly cancels, so less KL is spent on it (measured: "
                                  "4 × lr 1e-3 bought ~15 % more reward per nat than 2 × lr 2e-3).")
    cliprange: float = _f(0.2, "PPO clip ε of the probability ratio π/π_old.")
    cliprange_value: float = _f(0.2, "Clip of the value prediction around the old value.")
    vf_coef: float = _f(0.1, "Weight of the value loss in the total loss.")
    value_grad_to_policy: bool = _f(False, "Let the value loss's gradient flow through the shared backbone into the policy's weights (TRL's "
                                          "value head on the policy). Off: the value head learns on the policy's hidden states without moving "
                                          "them, so fitting the critic costs no KL.")
    gamma: float = _f(1.0, "Discount γ of GAE (1 = none, usual for text).")
    lam: float = _f(0.95, "λ of generalised advantage estimation.")
    whiten_rewards: bool = _f(False, "Whiten per-token rewards per batch. Measured here: faster reward but reward hacking (\"love love love\").")
    whiten_advantages: bool = _f(True, "Whiten advantages per batch (standard PPO).")
    max_grad_norm: float = _f(1.0, "Gradient clipping (global norm).")
    reuse_generation_logprobs: bool = _f(True, "Take old log-probs and values from the generation forward instead of a second forward (saves ~0.6 s per update).")

    # --- parameterisation ------------------------------------------------------------------------------
    full_finetune: bool = _f(False, "Train all weights (reference = a frozen second copy) instead of a LoRA adapter (reference = adapter switched off).")
    lora_r: int = _f(8, "LoRA rank.")
    lora_alpha: int = _f(16, "LoRA alpha (scale = alpha / r).")
    lora_targets: str = _f("attention", "Which layers get LoRA: 'attention' (q,k,v,o projections) or 'all-linear'.")
    lora_layers: int = _f(8, "LoRA only on the top N decoder layers (0 = all). The layers below stay equal to the reference, so their "
                             "hidden states are taken from generation and only the top N layers run again in the reference and PPO passes: much faster updates.")

    # --- evaluation ----------------------------------------------------------------------------------------
    eval_every: int = _f(0, "Evaluate on held-out prompts every N updates (0 = only at the end).")
    eval_at_seconds: tuple = _f((), "Also evaluate at these training times (seconds), just before an update would cross each.")
    eval_at_start: bool = _f(False, "Evaluate the untrained policy first (step 0), to have the base on the reward-vs-KL plot.")
    eval_final: bool = _f(True, "Evaluate at the end of training.")
    eval_prompts: int = _f(32, "Held-out prompts per evaluation (× 2 samples each).")
    before_after_queries: int = _f(6, "Fixed held-out queries answered by the reference and the policy at the end.")
    device: str = _f("", "Device: '' = CUDA if available else CPU.")

    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def help(cls, name: str) -> str:
        return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval_at_seconds"] = list(self.eval_at_seconds)
        return d

    def validate(self) -> "PPOConfig":
        """Raise ValueError with a clear message for nonsense; return self."""

        def need(cond: bool, msg: str):
            if not cond:
                raise ValueError(msg)

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("steps", "batch_size", "query_min_tokens", "query_max_tokens", "response_min_tokens",
                     "response_max_tokens", "ppo_epochs", "num_mini_batches", "lora_r", "lora_alpha", "lora_layers", "seed",
                     "eval_every", "eval_prompts", "before_after_queries", "top_k", "responses_per_query"):
            need(is_int(getattr(self, name)), f"{name} must be an integer, got {getattr(self, name)!r}")
        need(1 <= self.steps <= MAX_STEPS, f"steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        need(0 <= self.max_seconds <= MAX_SECONDS, f"max_seconds must be between 0 and {MAX_SECONDS}, got {self.max_seconds}")
        need(1 <= self.batch_size <= MAX_BATCH, f"batch_size must be between 1 and {MAX_BATCH}, got {self.batch_size}")
        need(1 <= self.num_mini_batches <= self.batch_size and self.batch_size % self.num_mini_batches == 0,
             f"batch_size ({self.batch_size}) must be divisible by num_mini_batches ({self.num_mini_batches})")
        need(1 <= self.responses_per_query <= self.batch_size and self.batch_size % self.responses_per_query == 0,
             f"batch_size ({self.batch_size}) must be divisible by responses_per_query ({self.responses_per_query})")
        need(1 <= self.ppo_epochs <= 16, f"ppo_epochs must be between 1 and 16, got {self.ppo_epochs}")
        need(1 <= self.query_min_tokens <= self.query_max_tokens <= 256,
             f"query length range [{self.query_min_tokens}, {self.query_max_tokens}] must satisfy 1 ≤ min ≤ max ≤ 256")
        need(1 <= self.response_min_tokens <= self.response_max_tokens <= 256,
             f"response length range [{self.response_min_tokens}, {self.response_max_tokens}] must satisfy 1 ≤ min ≤ max ≤ 256")
        need(self.temperature > 0 and self.temperature <= 10, f"temperature must be in (0, 10], got {self.temperature}")
        need(self.top_k >= 0, f"top_k must be ≥ 0 (0 = off), got {self.top_k}")
        need(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        need(self.beta >= 0 and self.beta == self.beta, f"beta (KL coefficient) must be ≥ 0, got {self.beta}")
        need(self.beta <= 10, f"beta {self.beta} is absurdly large (limit 10): the policy could not move at all")
        need(self.kl_estimator in ("k1", "k3"), f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        need(self.kl_budget >= 0 and self.kl_budget == self.kl_budget, f"kl_budget must be ≥ 0 (0 = none), got {self.kl_budget}")
        need(1 <= self.kl_budget_beta_factor <= 10, f"kl_budget_beta_factor must be in [1, 10], got {self.kl_budget_beta_factor}")
        need(0 < self.kl_budget_lr_factor <= 1, f"kl_budget_lr_factor must be in (0, 1], got {self.kl_budget_lr_factor}")
        need(self.kl_penalty in ("reward", "loss"), f"kl_penalty must be 'reward' or 'loss', got {self.kl_penalty!r}")
        need(self.kl_control_estimate in ("exact", "k1"), f"kl_control_estimate must be 'exact' or 'k1', got {self.kl_control_estimate!r}")
        if self.adaptive_kl:
            need(self.kl_target > 0, f"kl_target must be > 0 with the adaptive controller, got {self.kl_target}")
            need(self.kl_horizon > 0, f"kl_horizon must be > 0, got {self.kl_horizon}")
            need(self.beta > 0, "the adaptive KL controller needs an initial beta > 0 (it scales β multiplicatively)")
            need(0 <= self.beta_min <= self.beta, f"beta_min must be between 0 and the initial beta ({self.beta}), got {self.beta_min}")
        need(self.lr == self.lr and self.lr > 0, f"learning rate must be > 0, got {self.lr}")
        need(self.lr <= 0.1, f"learning rate {self.lr} is absurd (limit 0.1): training would diverge at once")
        need(0 < self.cliprange <= 10, f"cliprange must be in (0, 10], got {self.cliprange}")
        need(0 < self.cliprange_value <= 100, f"cliprange_value must be > 0, got {self.cliprange_value}")
        need(0 <= self.vf_coef <= 100, f"vf_coef must be in [0, 100], got {self.vf_coef}")
        need(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        need(0 <= self.lam <= 1, f"lam must be in [0, 1], got {self.lam}")
        need(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        need(1 <= self.lora_r <= 256, f"lora_r must be between 1 and 256, got {self.lora_r}")
        need(0 <= self.lora_layers <= 1000, f"lora_layers must be between 0 (all layers) and the model's layer count, got {self.lora_layers}")
        need(self.lora_alpha >= 1, f"lora_alpha must be ≥ 1, got {self.lora_alpha}")
        need(self.lora_targets in ("attention", "all-linear"), f"lora_targets must be 'attention' or 'all-linear', got {self.lora_targets!r}")
        need(self.eval_every >= 0, f"eval_every must be ≥ 0, got {self.eval_every}")
        need(1 <= self.eval_prompts <= 45, f"eval_prompts must be between 1 and 45 (the held-out split), got {self.eval_prompts}")
        need(0 <= self.before_after_queries <= 45, "before_after_queries must be between 0 and 45")
        need(all(isinstance(s, (int, float)) and s > 0 for s in self.eval_at_seconds), "eval_at_seconds must be positive numbers")
        need(isinstance(self.model, str) and self.model.strip() != "", "model must be named")
        need(self.device in ("", "cpu", "cuda") or self.device.startswith("cuda:"), f"device must be '', 'cpu' or 'cuda', got {self.device!r}")
        return self


PRESETS: dict[str, dict] = {
    "quick-cpu": {},
    "no-kl": {"beta": 0.0, "adaptive_kl": False, "beta_min": 0.0, "kl_budget": 0.0},
    "course": {
        "lora_layers": 0, "kl_control_estimate": "k1", "beta_min": 0.0, "kl_budget": 0.0,
        "model": "lvwerra/gpt2-imdb", "reward": "hf:lvwerra/distilbert-imdb:POSITIVE",
        "full_finetune": True, "lr": 1.41e-5, "batch_size": 128, "num_mini_batches": 1, "ppo_epochs": 4,
        "beta": 0.2, "adaptive_kl": True, "kl_target": 6.0, "kl_horizon": 10000.0,
        "response_min_tokens": 4, "response_max_tokens": 16, "ban_special_tokens": False,
        "whiten_rewards": False, "steps": 200, "value_grad_to_policy": True, "kl_budget_lr_factor": 1.0,
    },
}
PRESET_LABELS = {
    "quick-cpu": "Quick CPU demo (SmolLM2-135M, VADER, LoRA, β 0.03 + KL budget)",
    "no-kl": "No KL penalty (β = 0): watch it reward-hack",
    "course": "Course: gpt2-imdb + distilbert-imdb (needs the Hub)",
}
DEFAULT_PRESET = "quick-cpu"


def preset(name: str | None = None, **overrides) -> PPOConfig:
    """A config from a preset name plus overrides (``None`` values are ignored)."""
    name = name or DEFAULT_PRESET
    if name not in PRESETS:
        raise ValueError(f"unknown PPO preset {name!r}: choose one of {', '.join(PRESETS)}")
    cfg = replace(PPOConfig(), **PRESETS[name])
    known = {f.name for f in fields(PPOConfig)}
    bad = [k for k in overrides if k not in known]
    if bad:
        raise ValueError(f"unknown PPO setting(s): {', '.join(bad)}")
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if isinstance(cfg.eval_at_seconds, list):
        cfg = replace(cfg, eval_at_seconds=tuple(cfg.eval_at_seconds))
    return cfg
