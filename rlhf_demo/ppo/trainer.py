"""PPO from a reward function, the classic RLHF recipe (Ziegler et al. 2019; the Hugging Face
course's ``PPOTrainer``), written to be read top to bottom.

One update (``PPOTrainer.step``):

    1. sample a batch of prompts, cut each to a random query length
    2. roll out: the policy samples a response per query (old log-probs and values come from the
       generation forward itself)
    3. score query+response with the reward function (its raw outputs are kept for display)
    4. reference log-probs: the same model with its LoRA adapter switched off (or a frozen copy),
       and the exact KL(π_old‖π_ref) at every response position from the two full distributions
    5. token rewards: −β·KL on every token, the score added at the last token (minus the mean score
       of the other answers to the same query when each query is answered k > 1 times); or, with
       ``prefix_rewards``, each token's change of the score (the prefixes are scored too)
    6. advantages by GAE over the value head's predictions, then whitened
    7. PPO epochs × mini-batches: clipped surrogate + clipped value loss, gradient clipping
    8. adapt β toward the KL target, log one metrics record

With a KL budget, the batch of step 1 also judges the policy the previous update produced: past the
budget, that update is undone instead (``kl_budget.py``). Before an evaluation, and at the end, the
last update is judged at once (``check_budget``), so what is evaluated and saved is always a policy
the budget accepted.

Speed on a CPU: with LoRA on the top N layers only (``lora_layers``, 8 of 30 in the quick preset),
the layers below are identical for the policy, the reference and every PPO epoch, so steps 4 and 7
run only the top N layers on hidden states kept from the generation of step 2 (``trunk.py``; checked
against a full forward when the trainer starts).

What is simplified here
-----------------------
- One process, no accelerate/DeepSpeed; the value head (one linear layer) shares the policy's
  backbone and LoRA adapter instead of being a separate model.
- Log-probs use the full softmax of logits / temperature: top-k / top-p filtering and banned special
  tokens change what is sampled but not the π in the ratio (as in TRL's old trainer).
- No reward normalisation/scaling statistics across batches; optional per-batch whitening only.
- No early stopping of PPO epochs on approx-KL, no entropy bonus, no learning-rate schedule.
- The adaptive KL controller reads the batch's exact KL per response by default
  (``kl_control_estimate``; the classic choice, the k1 estimate, is an option).

The loop is a generator (``PPOTrainer.train``) yielding one metrics record per update, so the UI, the
command line, the tests and the benchmarks all watch the same loop.
"""
from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from rlhf_demo.data.prompts import LengthSampler, builtin_prompts, load_prompts, truncate_prompt
from rlhf_demo.evaluate import EvalConfig, evaluate_policy
from rlhf_demo.kl.estimators import exact_kl, masked_mean, masked_sum
from rlhf_demo.ppo.budget import KLBudget
from rlhf_demo.models.loading import DEFAULT_MODEL, load_model
from rlhf_demo.ppo.forward import ValueHead, at_temperature, forward_response, pick, subset
from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.ppo.loss import (AdaptiveKLController, FixedKLController, compute_rewards, entropy_from_logprobs, gae,
                       last_token_index, leave_one_out_baseline, policy_loss, prefix_shaped_scores, value_loss, whiten)
from rlhf_demo.rewards.functions import make_reward, prefix_potentials
from rlhf_demo.runs.folder import RunWriter
from rlhf_demo.decoding.sampling import Batch, decode_queries, decode_responses, left_pad, position_ids, sample_responses
from rlhf_demo.ppo.trunk import check_trunk, num_layers


@dataclass
class Rollout:
    batch: Batch
    queries: list[str]
    responses: list[str]
    scores: torch.Tensor          # [B]
    details: list
    logprobs: torch.Tensor        # [B, R] old log π
    ref_logprobs: torch.Tensor    # [B, R]
    values: torch.Tensor          # [B, R] old V
    exact_kl: torch.Tensor        # [B, R] Σ_v π_old(v)·(log π_old(v) − log π_ref(v)) per response position
    entropy: float                # mean over response tokens of −Σ_v π_old(v)·log π_old(v)
    ref_logp_all: torch.Tensor | None = None  # [B, R, V] log π_ref (only with kl_penalty="loss")
    token_scores: torch.Tensor | None = None  # [B, R] Φ_t − Φ_{t−1} of the prefix scores (only with prefix_rewards)


class PPOTrainer:
    """Holds the policy (+ value head), its reference, the optimiser and the run folder.

    ``trainer = PPOTrainer(cfg, out="runs/x"); for record in trainer.train(): ...``
    After the loop: ``trainer.status`` (finished / stopped / diverged), ``trainer.message``,
    ``trainer.before_after`` (rows), ``trainer.last_batch`` (rows of the latest update).
    """

    def __init__(self, cfg: PPOConfig, out: str | Path | None = None, *, overwrite: bool = False,
                 reward_fn: Callable | None = None, prompts: list[str] | None = None,
                 stop: Callable[[], bool] | None = None, progress: Callable[[float, str], None] | None = None):
        self.cfg = cfg.validate()
        say = progress or (lambda f, m: None)
        # Fail fast on inputs before the model loads.
        self.reward_fn = reward_fn if reward_fn is not None else make_reward(cfg.reward)
        self.prompts = prompts if prompts is not None else load_prompts(cfg.prompts)
        if cfg.prompts in ("builtin", "", None) and prompts is None:
            held = set(builtin_prompts("heldout"))
            self.prompts = [p for p in self.prompts if p not in held]
        if not self.prompts:
            raise ValueError("no training prompts")
        self.stop = stop or (lambda: False)
        self.writer = None
        if out is not None and not overwrite and Path(out).expanduser().exists() and any(Path(out).expanduser().iterdir()):
            raise FileExistsError(f"run folder {str(out)!r} exists and is not empty; choose another output folder")

        torch.manual_seed(cfg.seed)
        self.rng = random.Random(cfg.seed)
        device = torch.device(cfg.device) if cfg.device else None
        say(0.1, f"Loading a training copy of {cfg.model}…")
        bundle = load_model(cfg.model, device=device)
        self.tok, self.device, self.dtype = bundle.tokenizer, bundle.device, bundle.dtype
        base = bundle.model
        self.reference = None
        self.trunk_layer: int | None = None   # set when only the layers from here up carry LoRA (trunk.py)
        if cfg.full_finetune:
            say(0.4, "Loading a frozen reference copy…")
            self.reference = load_model(cfg.model, device=self.device).model.eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
            self.policy = base
            for p in self.policy.parameters():
                p.requires_grad_(True)
        else:
            from peft import LoraConfig, get_peft_model

            names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
            L = num_layers(base)
            top = cfg.lora_layers if 0 < cfg.lora_layers < L else 0
            linear = ("q_proj", "k_proj", "v_proj", "o_proj") + (("gate_proj", "up_proj", "down_proj") if cfg.lora_targets == "all-linear" else ())
            if {"q_proj", "v_proj"} <= names:
                targets = [t for t in linear if t in names]
            elif cfg.lora_targets == "all-linear" and not top:
                targets = "all-linear"
            else:
                targets = None  # peft's default for this architecture (e.g. GPT-2's c_attn)
            lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=targets,
                              task_type="CAUSAL_LM", layers_to_transform=list(range(L - top, L)) if top else None,
                              layers_pattern="layers" if top else None)
            self.policy = get_peft_model(base, lcfg)
            # LoRA on the top layers only: the trunk below is shared with the reference (trunk.py)
            if top and cfg.reuse_generation_logprobs:
                ids, am = left_pad([self.tok.encode(p)[:10] for p in self.prompts[:2]] + [[self.tok.eos_token_id or 0]],
                                   self.tok.pad_token_id if self.tok.pad_token_id is not None else 0, self.device)
                if check_trunk(self.policy, ids, am, position_ids(am), L - top):
                    self.trunk_layer = L - top
                    say(0.8, f"LoRA on the top {top} of {L} layers: the reference and PPO passes run only those")
        self.value_head = ValueHead(base.config.hidden_size).to(self.device)
        params = [p for p in self.policy.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.n_trainable = sum(p.numel() for p in params)
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
        if cfg.adaptive_kl:
            self.kl_ctl = AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon, cfg.beta_min)
        else:
            self.kl_ctl = FixedKLController(cfg.beta)
        self.query_len = LengthSampler(cfg.query_min_tokens, cfg.query_max_tokens)
        self.response_len = LengthSampler(cfg.response_min_tokens, cfg.response_max_tokens)
        self.eval_cfg = EvalConfig(n_prompts=cfg.eval_prompts)
        self.status, self.message = "running", ""
        self.history: list[dict] = []
        self.last_batch: list[dict] = []
        self.before_after: list[dict] = []
        self.last_eval: dict | None = None
        self.time_s = 0.0
        self.step_no = 0
        self.kl_budget = KLBudget(cfg.kl_budget, cfg.kl_budget_beta_factor, cfg.kl_budget_lr_factor)
        self._checked: tuple[Rollout, dict] | None = None   # a batch sampled by check_budget(), for the next update
        if out is not None:
            self.writer = RunWriter(out, {"algo": "ppo", **cfg.to_dict()}, overwrite=overwrite)
        say(1.0, "Ready")

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def reference_context(self):
        """The reference model: the policy with its LoRA adapter switched off, or the frozen copy."""
        if self.reference is not None:
            yield self.reference
        else:
            with self.policy.disable_adapter():
                yield self.policy

    def _sample_queries(self) -> list[list[int]]:
        """batch_size / k queries, each repeated k times in a row (k = responses_per_query)."""
        k = self.cfg.responses_per_query
        chosen = [self.prompts[self.rng.randrange(len(self.prompts))] for _ in range(self.cfg.batch_size // k)]
        return [q for p in chosen for q in [truncate_prompt(self.tok, p, self.query_len(self.rng))] * k]

    # ------------------------------------------------------------------ 1-4: rollout
    @torch.no_grad()
    def rollout(self, timings: dict) -> Rollout:
        cfg = self.cfg
        self.policy.eval()
        t0 = time.perf_counter()
        queries = self._sample_queries()                                            # 1. queries
        R = self.response_len(self.rng)
        batch = sample_responses(self.policy, self.tok, queries, R, temperature=cfg.temperature,   # 2. rollout
                                 top_k=cfg.top_k, top_p=cfg.top_p, seed=cfg.seed * 100_003 + self.step_no,
                                 ban_special_tokens=cfg.ban_special_tokens,
                                 keep_outputs=cfg.reuse_generation_logprobs, trunk_layer=self.trunk_layer)
        resp_ids = batch.response_ids                                               # [B, R]
        if cfg.reuse_generation_logprobs:
            logp_all = F.log_softmax(at_temperature(batch.logits.float(), cfg.temperature), dim=-1)  # [B, R, V]
            logprobs = pick(logp_all, resp_ids)
            values = self.value_head(batch.last_hidden)
            batch.logits = batch.last_hidden = None                                 # free memory
        t1 = time.perf_counter()
        timings["time/generate"] = t1 - t0
        if not cfg.reuse_generation_logprobs:
            logits, values = forward_response(self.policy, batch, cfg.temperature, self.value_head)
            logp_all = F.log_softmax(logits, dim=-1)
            logprobs = pick(logp_all, resp_ids)
            del logits
        t2 = time.perf_counter()
        q_txt, r_txt = decode_queries(self.tok, batch), decode_responses(self.tok, batch)
        scores = self.reward_fn([q + r for q, r in zip(q_txt, r_txt)])              # 3. score
        details = list(getattr(self.reward_fn, "last_details", []) or [])
        token_scores = None
        if cfg.prefix_rewards:   # each token credited with its change of the score
            phi = prefix_potentials(self.reward_fn, self.tok, q_txt, batch.response_ids, batch.response_mask, scores)
            token_scores = prefix_shaped_scores(torch.tensor(phi, device=self.device), batch.response_mask.float())  # [B, R]
        t3 = time.perf_counter()
        with self.reference_context() as ref:                                      # 4. reference
            ref_logits, _ = forward_response(ref, batch, cfg.temperature, trunk_layer=self.trunk_layer)
            ref_all = F.log_softmax(ref_logits, dim=-1)                             # [B, R, V]
            ref_logprobs = pick(ref_all, resp_ids)
            # exact KL(π_old‖π_ref) at every response position, from the full distributions we already hold
            exact = exact_kl(logp_all, ref_all)                                     # [B, R]
            # and the entropy of the policy that sampled the batch, from the distributions at hand
            entropy = float(masked_mean(entropy_from_logprobs(logp_all), batch.response_mask.float()))
            keep_ref = ref_all if cfg.kl_penalty == "loss" else None                # the KL-in-loss term needs it
            del ref_logits, ref_all, logp_all
        t4 = time.perf_counter()
        timings["time/old_forward"] = t2 - t1
        timings["time/score"] = t3 - t2
        timings["time/reference"] = t4 - t3
        scores_t = torch.tensor([float(s) for s in scores], dtype=torch.float32, device=self.device)
        return Rollout(batch, q_txt, r_txt, scores_t, details, logprobs.float(), ref_logprobs.float(), values.float(),
                       exact.float(), entropy, keep_ref, token_scores)

    # ------------------------------------------------------------------ one update
    def step(self) -> dict:
        """One PPO update; returns its metrics record (without time_s / eval keys)."""
        cfg = self.cfg
        timings: dict[str, float] = {}
        if self._checked is not None:   # sampled (and timed) already by check_budget()
            (ro, timings), self._checked = self._checked, None
        else:
            ro = self.rollout(timings)
        mask = ro.batch.response_mask.float()                                       # [B, R]
        beta = self.kl_ctl.value
        batch_kl = float(masked_sum(ro.exact_kl, mask, dim=1).mean())              # exact KL(π‖π_ref) per response
        if self.kl_budget.crossed(batch_kl):                                        # undo the last update
            return self._roll_back(ro, mask, beta, batch_kl, timings)
        self.kl_budget.keep(self._trainable(), self.optimizer)
        lr = cfg.lr * self.kl_budget.step_scale                                     # smaller steps after an undo
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # 5. token rewards: −β·KL per token, score on the last token
        B = cfg.batch_size
        beta_r = beta if cfg.kl_penalty == "reward" else 0.0
        # the score each answer is credited with: minus the other answers' mean for its query (k > 1)
        baseline = leave_one_out_baseline(ro.scores, cfg.responses_per_query)     # [B]
        if ro.token_scores is not None:   # prefix shaping: each token's change of the score; the baseline at the end
            credited = ro.token_scores.clone()                                      # [B, R]
            credited[torch.arange(B), last_token_index(mask)] -= baseline
        else:
            credited = ro.scores - baseline                                         # [B], on the last token
        rewards, non_score_reward, kl = compute_rewards(credited, ro.logprobs, ro.ref_logprobs, mask,
                                                        beta_r, cfg.kl_estimator)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        # 6. advantages
        advantages, returns = gae(rewards, ro.values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)

        # 7. PPO epochs × mini-batches
        self.policy.train()
        mb = B // cfg.num_mini_batches
        stats = {k: [] for k in ("pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac", "approxkl", "ratio", "grad_norm")}
        t_fwd = t_bwd = t_opt = 0.0
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.step_no)
        for _epoch in range(cfg.ppo_epochs):
            order = torch.randperm(B, generator=gen)
            for start in range(0, B, mb):
                idx = order[start:start + mb]
                m = mask[idx]
                t0 = time.perf_counter()
                logits, vpred = forward_response(self.policy, subset(ro.batch, idx), cfg.temperature, self.value_head,
                                                 trunk_layer=self.trunk_layer, value_grad_to_policy=cfg.value_grad_to_policy)
                logp_all = F.log_softmax(logits, dim=-1)                            # [mb, R, V]
                new_logprobs = pick(logp_all, ro.batch.response_ids[idx])
                pg = policy_loss(new_logprobs, ro.logprobs[idx], advantages[idx], m, cfg.cliprange)
                vf = value_loss(vpred, ro.values[idx], returns[idx], m, cfg.cliprange_value)
                loss = pg["loss"] + cfg.vf_coef * vf["loss"]
                if cfg.kl_penalty == "loss":   # β·(exact KL(π_θ‖π_ref) per token), differentiated directly
                    kl_loss = masked_mean(exact_kl(logp_all, ro.ref_logp_all[idx]), m)
                    loss = loss + beta * kl_loss
                t1 = time.perf_counter()
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()}" + (
                        " (the reward function returned non-finite scores)" if not torch.isfinite(ro.scores).all() else ""))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                t2 = time.perf_counter()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for g in self.optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
                if torch.isfinite(grad_norm):
                    self.optimizer.step()
                else:
                    raise FloatingPointError(f"gradient norm is {grad_norm.item()}")
                t3 = time.perf_counter()
                t_fwd, t_bwd, t_opt = t_fwd + (t1 - t0), t_bwd + (t2 - t1), t_opt + (t3 - t2)
                for k, v in (("pg_loss", pg["loss"]), ("vf_loss", vf["loss"]), ("pg_clipfrac", pg["clipfrac"]),
                             ("vf_clipfrac", vf["clipfrac"]), ("approxkl", pg["approx_kl"]), ("ratio", pg["ratio"]),
                             ("grad_norm", grad_norm)):
                    stats[k].append(float(v.detach()) if torch.is_tensor(v) else float(v))
        timings.update({"time/forward": t_fwd, "time/backward": t_bwd, "time/optimizer": t_opt})

        # 8. adapt β, log
        kl_per_seq = masked_sum(kl, mask, dim=1)                                    # [B] (estimator chosen)
        k1_per_seq = masked_sum(ro.logprobs - ro.ref_logprobs, mask, dim=1)         # [B]
        exact_per_seq = masked_sum(ro.exact_kl, mask, dim=1)                        # [B]
        non_score = masked_sum(non_score_reward, mask, dim=1)                       # [B]
        self.kl_ctl.update(float((exact_per_seq if cfg.kl_control_estimate == "exact" else k1_per_seq).mean()), B)
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        scores = ro.scores
        record = {
            "step": self.step_no + 1,
            "episodes": (self.step_no + 1) * B,
            "reward_mean": float(scores.mean()),
            "reward_std": float(scores.std()) if B > 1 else 0.0,
            "kl": float(k1_per_seq.mean()),
            "objective/kl": float(k1_per_seq.mean()),
            "objective/kl_penalised": float(kl_per_seq.mean()),
            "objective/kl_exact": float(exact_per_seq.mean()),
            "objective/scores": float(scores.mean()),
            "objective/non_score_reward": float(non_score.mean()),
            "objective/rlhf_reward": float((scores + non_score).mean()),
            "objective/entropy": float(masked_sum(-ro.logprobs, mask, dim=1).mean()),
            "policy/entropy_avg": ro.entropy,   # of π_old, over the batch's response tokens
            "policy/approxkl_avg": mean(stats["approxkl"]),
            "policy/clipfrac_avg": mean(stats["pg_clipfrac"]),
            "loss/policy_avg": mean(stats["pg_loss"]),
            "loss/value_avg": mean(stats["vf_loss"]),
            "val/clipfrac_avg": mean(stats["vf_clipfrac"]),
            "val/ratio": mean(stats["ratio"]),
            "val/mean_value": float(masked_mean(ro.values, mask)),
            "val/advantage_std": float(masked_mean(advantages ** 2, mask).sqrt()),
            "grad_norm": mean(stats["grad_norm"]),
            "beta": beta,
            "beta_next": self.kl_ctl.value,
            "lr": lr,
            "response_length": float(mask.sum(1).mean()),
            "query_length": float(ro.batch.attention_mask[:, :ro.batch.query_len].sum(1).float().mean()),
            "kl_budget/rollback": 0,
            "kl_budget/rollbacks": self.kl_budget.rollbacks,
            **timings,
        }
        details = ro.details if len(ro.details) == B else [None] * B
        self.last_batch = [
            {"query": q, "response": r, "reward": float(s), "kl": float(k), "details": d}
            for q, r, s, k, d in zip(ro.queries, ro.responses, scores.tolist(), k1_per_seq.tolist(), details)
        ]
        return record

    # ------------------------------------------------------------------ KL budget
    def _trainable(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _undo_last_update(self) -> None:
        """Back to the policy before the last update (weights and optimiser state); β × beta_factor."""
        self.kl_budget.restore(self._trainable(), self.optimizer)
        self.kl_ctl.value *= self.kl_budget.beta_factor

    def _roll_back(self, ro: Rollout, mask: torch.Tensor, beta: float, batch_kl: float, timings: dict) -> dict:
        """The batch shows the policy past the KL budget: return to the policy before the last update
        (whose own batch was within the budget), tighten β, and skip this update."""
        self._undo_last_update()
        k1_per_seq = masked_sum(ro.logprobs - ro.ref_logprobs, mask, dim=1)
        B = self.cfg.batch_size
        self.last_batch = [{"query": q, "response": r, "reward": float(sc), "kl": float(k), "details": None}
                           for q, r, sc, k in zip(ro.queries, ro.responses, ro.scores.tolist(), k1_per_seq.tolist())]
        return {"step": self.step_no + 1, "episodes": (self.step_no + 1) * B,
                "reward_mean": float(ro.scores.mean()), "reward_std": float(ro.scores.std()) if B > 1 else 0.0,
                "kl": float(k1_per_seq.mean()), "objective/kl": float(k1_per_seq.mean()), "objective/kl_exact": batch_kl,
                "objective/scores": float(ro.scores.mean()), "beta": beta, "beta_next": self.kl_ctl.value,
                "kl_budget/rollback": 1, "kl_budget/rollbacks": self.kl_budget.rollbacks,
                "lr": self.cfg.lr * self.kl_budget.step_scale,
                "response_length": float(mask.sum(1).mean()), **timings}

    def check_budget(self) -> dict:
        """Judge the policy that the last update produced, *before* it is evaluated or saved.

        Each update is judged by the next batch, so without this the policy evaluated (or kept at
        the end) would be the one update nobody checked; measured, one update can add 0.5–2 nats.
        This samples the next update's batch now (it is kept, and trains that update) and undoes the
        last update if the batch shows it past the budget, as ``step`` would. Its time counts as
        training time. Returns the metrics of the check."""
        timings: dict[str, float] = {}
        ro = self.rollout(timings)
        mask = ro.batch.response_mask.float()
        batch_kl = float(masked_sum(ro.exact_kl, mask, dim=1).mean())
        if self.kl_budget.crossed(batch_kl):
            self._undo_last_update()
            undone = 1   # the batch came from the undone policy: not for training
        else:
            self._checked, undone = (ro, timings), 0
        return {"kl_budget/check_kl": batch_kl, "kl_budget/undone_at_check": undone,
                "kl_budget/rollbacks": self.kl_budget.rollbacks, "beta_next": self.kl_ctl.value}

    # ------------------------------------------------------------------ evaluation / end
    def evaluate(self) -> dict:
        ev = evaluate_policy(self.policy, self.tok, self.reward_fn, self.eval_cfg, reference=self.reference)
        self.last_eval = ev
        return {"eval/reward_mean": ev["reward_mean"], "eval/reward_std": ev["reward_std"],
                "eval/reward_sem": ev["reward_sem"], "eval/kl": ev["kl"], "eval/kl_k1": ev["kl_k1"],
                "eval/distinct2": ev["distinct2"], "eval/n": ev["n"]}

    @torch.no_grad()
    def compare_before_after(self) -> list[dict]:
        """The same fixed held-out queries answered by the reference and by the policy (same seed)."""
        n = self.cfg.before_after_queries
        if n == 0:
            return []
        prompts = builtin_prompts("heldout")[:n]
        queries = [truncate_prompt(self.tok, p, 6) for p in prompts]
        R = self.cfg.response_max_tokens
        self.policy.eval()
        with self.reference_context() as ref:
            before = sample_responses(ref, self.tok, queries, R, temperature=self.cfg.temperature, seed=4321)
            before_txt = decode_responses(self.tok, before)
        after = sample_responses(self.policy, self.tok, queries, R, temperature=self.cfg.temperature, seed=4321)
        q_txt, after_txt = decode_queries(self.tok, after), decode_responses(self.tok, after)
        rb = self.reward_fn([q + r for q, r in zip(q_txt, before_txt)])
        ra = self.reward_fn([q + r for q, r in zip(q_txt, after_txt)])
        return [{"query": q, "reference": b, "reference_reward": float(x), "policy": a, "policy_reward": float(y)}
                for q, b, x, a, y in zip(q_txt, before_txt, rb, after_txt, ra)]

    def save_policy(self) -> Path | None:
        if self.writer is None:
            return None
        d = self.writer.policy_dir
        d.mkdir(parents=True, exist_ok=True)
        if self.cfg.full_finetune:
            self.policy.save_pretrained(d, safe_serialization=True)
            self.tok.save_pretrained(d)
        else:
            self.policy.save_pretrained(d, safe_serialization=True)
            base = self.cfg.model
            if base != DEFAULT_MODEL and Path(base).expanduser().exists():
                base = str(Path(base).expanduser().resolve())
            (d / "base_model.txt").write_text(base + "\n")
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  str(self.writer.dir / "value_head.safetensors"))
        return d

    # ------------------------------------------------------------------ the loop
    def train(self) -> Iterator[dict]:
        """Run the updates; yield one metrics record per update (eval keys merged in when evaluated).

        Ends on ``cfg.steps``, ``cfg.max_seconds`` of training time, ``stop()`` returning True, or a
        non-finite loss ("diverged at step k"). The run folder is always completed (policy saved,
        summary written)."""
        cfg = self.cfg
        checkpoints = sorted(float(s) for s in cfg.eval_at_seconds)
        wall0 = time.perf_counter()
        per_update = None
        try:
            if cfg.eval_at_start:
                rec = {"step": 0, "time_s": 0.0, "wall_s": 0.0, "beta": self.kl_ctl.value, **self.evaluate()}
                self._log(rec)
                yield rec
            while self.step_no < cfg.steps:
                if self.stop():
                    self.status, self.message = "stopped", f"stopped by request after step {self.step_no}"
                    break
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    record = self.step()
                except FloatingPointError as exc:
                    self.status = "diverged"
                    self.message = f"diverged at step {self.step_no + 1}: {exc}"
                    rec = {"step": self.step_no + 1, "time_s": self.time_s, "diverged": True,
                           "reward_mean": float("nan"), "reward_std": float("nan"), "kl": float("nan")}
                    self._log(rec)
                    yield rec
                    break
                dt = time.perf_counter() - t0
                self.step_no += 1
                self.time_s += dt
                per_update = dt if per_update is None else 0.7 * per_update + 0.3 * dt
                record["time_s"] = self.time_s
                record["time/update"] = dt
                record["cpu_per_wall"] = (time.process_time() - c0) / dt  # ≈ threads when the CPU is ours alone
                # stop before an update that would cross the time budget (so evaluations stay within it)
                # (with a KL budget, the check before an evaluation costs about half an update more)
                ahead = per_update * (1.5 if self.kl_budget.budget else 1.0)
                budget_hit = bool(cfg.max_seconds) and self.time_s + ahead > cfg.max_seconds
                last = self.step_no >= cfg.steps or budget_hit
                due = cfg.eval_every and self.step_no % cfg.eval_every == 0
                while checkpoints and self.time_s + ahead > checkpoints[0]:
                    checkpoints.pop(0)
                    due = True
                if last and cfg.eval_final:
                    due = True
                if (due or last) and self.kl_budget.budget and not record.get("kl_budget/rollback"):
                    t1 = time.perf_counter()                                    # judge this update first
                    record.update(self.check_budget())
                    self.time_s += time.perf_counter() - t1
                    record["time_s"] = self.time_s
                if due:
                    record.update(self.evaluate())
                record["wall_s"] = time.perf_counter() - wall0
                self._log(record)
                if self.writer is not None:
                    self.writer.log_samples(record["step"], [{k: v for k, v in r.items() if k != "details"} for r in self.last_batch])
                yield record
                if budget_hit and self.step_no < cfg.steps:
                    self.message = f"time budget of {cfg.max_seconds:g} s reached after step {self.step_no}"
                    break
            if self.status == "running":
                self.status = "finished"
                self.message = self.message or f"finished {self.step_no} updates in {self.time_s:.0f} s of training"
            if self.status != "diverged":
                self.before_after = self.compare_before_after()
        finally:
            if self.status == "running":   # closed from outside (e.g. the UI cancelled the generator)
                self.status, self.message = "stopped", f"stopped after step {self.step_no}"
            self._finish()

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.writer is not None:
            self.writer.log_metrics(record)

    def _finish(self) -> None:
        if self.writer is None:
            return
        try:
            self.save_policy()
            if self.before_after:
                import json

                (self.writer.dir / "before_after.json").write_text(json.dumps(self.before_after, indent=2))
            final = {k: v for k, v in self.last_eval.items() if k != "samples"} if self.last_eval else {}
            self.writer.finish(self.status, self.message, steps=self.step_no, time_s=self.time_s,
                               n_trainable=self.n_trainable, final_eval=final, trunk_layer=self.trunk_layer)
        finally:
            self.writer.close()


def train_ppo(cfg: PPOConfig, out: str | Path | None = None, **kwargs) -> Iterator[dict]:
    """Convenience: build a trainer and iterate its loop."""
    trainer = PPOTrainer(cfg, out, **kwargs)
    yield from trainer.train()


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
