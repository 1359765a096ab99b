"""PPO from a reward function, the classic RLHF recipe (Ziegler et al. 2019; the Hugging Face
course's ``PPOTrainer``), written to be read top to bottom.

One update (``PPOTrainer.step``):

    1–4. roll out a batch and compare it with the reference (``rollout.py``)
    5. token rewards: −β·KL on every token, the score added at the last token (``loss.compute_rewards``)
    6. advantages by GAE over the value head's predictions, whitened
    7. PPO epochs × mini-batches: clipped surrogate + clipped value loss, gradient clipping (``epochs.py``)
    8. adapt β toward the KL target (when set), one metrics record

With a KL budget, the batch of step 1 also judges the policy the previous update produced: past the
budget, that update is undone instead (``budget.py``). Before an evaluation, and at the end, the last
update is judged at once (``check_budget``), so what is evaluated and saved is a policy the budget
accepted.

What is simplified here
-----------------------
- The value head (one linear layer) reads the policy's hidden states instead of being a separate
  model. Under ``accelerate launch --num_processes N`` each process samples batch_size / N episodes
  (its own seed stream; the streams are named in ``seeds.py``), advantages are whitened over the
  whole batch, gradients are averaged and the records reduced (``training/distributed.py``); one
  process is the default.
- Rollouts sample the policy's full distribution at temperature 1 (banned special tokens change what
  is sampled, not the π in the ratio, as in TRL's old trainer).
- No reward normalisation across batches, no early stopping of PPO epochs on approx-KL, no entropy
  bonus, no learning-rate schedule.

The trainer does no I/O: it takes a config and yields one record per update (the keys are listed in
``runs/records.py``); ``runs.folder.write_run`` writes the run folder for it. When it sets ``run_dir``,
each update's per-token terms go to ``RUN/tokens/`` as well (``tokens.py``; the inspector reads them).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

import torch

from rlhf_demo.before_after import before_after
from rlhf_demo.data.prompts import builtin_prompts, load_prompts, truncate_prompt
from rlhf_demo.decoding.sampling import left_pad, position_ids
from rlhf_demo.evaluate import EvalConfig, evaluate_policy
from rlhf_demo.kl.estimators import masked_mean, masked_sum
from rlhf_demo.models.loading import resolve_dtype
from rlhf_demo.models.lora import build_policy
from rlhf_demo.ppo.budget import KLBudget
from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.ppo.epochs import ppo_epochs
from rlhf_demo.ppo.forward import ValueHead
from rlhf_demo.ppo.kl_control import AdaptiveKLController, FixedKLController
from rlhf_demo.ppo.loss import compute_rewards, gae, whiten
from rlhf_demo.ppo.rollout import Rollout, episode_rows, rollout
from rlhf_demo.ppo.seeds import minibatch_generator, rollout_seed
from rlhf_demo.ppo.tokens import save_update, token_table
from rlhf_demo.ppo.trunk import check_trunk
from rlhf_demo.rewards.functions import make_reward
from rlhf_demo.runs.records import eval_record
from rlhf_demo.training import distributed
from rlhf_demo.training.clock import TrainingClock


class PPOTrainer:
    """``trainer = PPOTrainer(cfg); for record in trainer.train(): ...``

    After the loop: ``status`` (finished / stopped / diverged), ``message``, ``before_after`` (rows;
    empty with ``eval_final`` off), ``last_eval`` (the last held-out evaluation), ``policy`` (a ``models.lora.TrainablePolicy``)."""

    def __init__(
        self,
        cfg: PPOConfig,
        *,
        reward_fn: Callable | None = None,
        prompts: list[str] | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[float, str], None] | None = None,
    ):
        self.cfg = cfg.validate()
        say = progress or (lambda f, m: None)
        distributed.init()
        self.local_batch = distributed.share(cfg.batch_size, "batch_size", cfg.batch_unit())  # this process's episodes
        self.reward_fn = reward_fn if reward_fn is not None else make_reward(cfg.reward, device=cfg.device or None)
        self.gold_fn = self._gold(reward_fn)  # fail fast, before the model
        self.prompts = prompts if prompts is not None else load_prompts(cfg.prompts)
        if prompts is None and cfg.prompts in ("builtin", ""):
            held = set(builtin_prompts("heldout"))
            self.prompts = [p for p in self.prompts if p not in held]
        if not self.prompts:
            raise ValueError("no training prompts")
        self.stop = stop or (lambda: False)
        self.skip_eval = False  # set by a second Stop (training.queue): no held-out evaluation of the stopped policy
        self.rng = random.Random(distributed.seed_for(cfg.seed))
        self.policy = build_policy(
            cfg.model,
            full_finetune=cfg.full_finetune,
            lora_r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_layers=cfg.lora_layers,
            device=cfg.device or None,
            seed=cfg.seed,
            progress=say,
            dtype=resolve_dtype(cfg.dtype),
        )
        self.tok, self.device = self.policy.tokenizer, self.policy.device
        self.trunk_layer = self._trunk_layer(say)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.value_head = ValueHead(self.policy.model.config.hidden_size).to(self.device)
        params = self.policy.trainable() + list(self.value_head.parameters())
        distributed.broadcast_params(params)
        self.n_trainable = sum(p.numel() for p in params)
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
        self.kl_ctl = AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl else FixedKLController(cfg.beta)
        self.kl_budget = KLBudget(cfg.kl_budget, cfg.kl_budget_lr_factor)
        self.status, self.message = "running", ""
        self.before_after: list[dict] = []
        self.last_eval: dict | None = None
        self.step_no = 0
        self._checked: Rollout | None = None  # a batch sampled by check_budget(), for the next update
        self.checkpoint: Callable | None = None  # set by runs.folder.write_run: saves the policy now and then
        self.run_dir = None  # set by runs.folder.write_run (process 0): the per-token store goes to RUN/tokens/
        say(1.0, "Ready")

    def _trunk_layer(self, say) -> int | None:
        """With LoRA on the top layers only, the layer from which the reference and PPO passes run
        (``trunk.py``), once a full forward has confirmed the shortcut on this model."""
        first = self.policy.lora_first_layer
        if first is None:
            return None
        ids, am = left_pad(
            [self.tok.encode(p)[:10] for p in self.prompts[:2]] + [[self.tok.eos_token_id or 0]],
            self.tok.pad_token_id if self.tok.pad_token_id is not None else 0,
            self.device,
        )
        if not check_trunk(self.policy.model, ids, am, position_ids(am), first):
            return None
        say(0.8, f"LoRA on the top layers from {first}: the reference and PPO passes run only those")
        return first

    def _gold(self, given) -> Callable | None:
        """The gold reward (``cfg.gold_reward``; None for 'none'): the training reward itself when the specs match."""
        spec = self.cfg.gold_reward
        if spec == "none":
            return None
        if given is None and spec == self.cfg.reward:
            return self.reward_fn
        return make_reward(spec, device=self.cfg.device or None)

    def run_info(self) -> dict:
        return {"n_trainable": self.n_trainable, "trunk_layer": self.trunk_layer}

    # ------------------------------------------------------------------ 1-4
    def rollout(self) -> Rollout:
        cfg = self.cfg
        queries = [
            truncate_prompt(self.tok, self.prompts[self.rng.randrange(len(self.prompts))], self.rng.randint(*cfg.query_tokens))
            for _ in range(self.local_batch)
        ]
        return rollout(
            self.policy,
            self.value_head,
            self.tok,
            queries,
            self.rng.randint(*cfg.response_tokens),
            self.reward_fn,
            seed=distributed.seed_for(rollout_seed(cfg.seed, self.step_no)),
            ban_special_tokens=cfg.ban_special_tokens,
            trunk_layer=self.trunk_layer,
            gold_fn=self.gold_fn,
        )

    # ------------------------------------------------------------------ one update
    def step(self) -> dict:
        """One PPO update; returns its metrics record (without time_s / eval keys)."""
        cfg = self.cfg
        ro, self._checked = (self._checked or self.rollout()), None
        mask = ro.batch.response_mask.float()  # [B, R]
        B, beta = self.local_batch, self.kl_ctl.value
        exact_per_seq = masked_sum(ro.exact_kl, mask, dim=1)  # [B] exact KL(π_old‖π_ref)
        k1_per_seq = masked_sum(ro.logprobs - ro.ref_logprobs, mask, dim=1)  # [B]
        batch = {
            "step": self.step_no + 1,
            "episodes": (self.step_no + 1) * cfg.batch_size,
            "reward_mean": float(ro.scores.mean()),
            "reward_std": float(ro.scores.std()) if B > 1 else 0.0,
            "objective/kl": float(k1_per_seq.mean()),
            "objective/kl_exact": float(exact_per_seq.mean()),
            "objective/scores": float(ro.scores.mean()),
            "beta": beta,
            **({"gold_reward_mean": float(ro.gold_scores.mean())} if ro.gold_scores is not None else {}),
            "response_length": float(mask.sum(1).mean()),
            "samples": episode_rows(ro, k1_per_seq),
            **ro.timings,
        }
        batch = distributed.reduce_record(batch)  # the whole batch's, on every process
        if self.kl_budget.crossed(batch["objective/kl_exact"]):  # undo the last update instead
            self.kl_budget.restore(self.all_params(), self.optimizer)
            self.keep_tokens(ro, mask, beta, None)
            return {
                **batch,
                "kl_budget/rollback": 1,
                "kl_budget/rollbacks": self.kl_budget.rollbacks,
                "beta_next": self.kl_ctl.value,
                "learning_rate": cfg.lr * self.kl_budget.step_scale,
            }
        self.kl_budget.keep(self.all_params(), self.optimizer)
        lr = cfg.lr * self.kl_budget.step_scale  # smaller steps after an undo
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # 5. token rewards: −β·KL per token, score on the last token
        rewards, non_score_reward, kl = compute_rewards(ro.scores, ro.logprobs, ro.ref_logprobs, mask, beta, cfg.kl_estimator)
        # 6. advantages
        advantages_raw, returns = gae(rewards, ro.values, mask, cfg.gamma, cfg.lam)
        advantages = whiten(advantages_raw, mask, total=distributed.sum_all)
        # 7. PPO epochs × mini-batches
        stats, timings, last = ppo_epochs(
            self.policy.model,
            self.value_head,
            self.optimizer,
            self.all_params(),
            ro,
            mask,
            advantages,
            returns,
            cfg,
            trunk_layer=self.trunk_layer,
            generator=minibatch_generator(cfg.seed, self.step_no),
        )
        terms = {"kl": kl, "reward": rewards, "return": returns, "advantage_raw": advantages_raw, "advantage": advantages}
        self.keep_tokens(ro, mask, beta, {**terms, **last})
        # 8. adapt β (on the exact KL), log
        self.kl_ctl.update(batch["objective/kl_exact"], cfg.batch_size)
        non_score = masked_sum(non_score_reward, mask, dim=1)  # [B]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        return {
            **batch,
            **distributed.reduce_record(
                {  # batch: reduced above
                    **timings,
                    "objective/kl_penalised": float(masked_sum(kl, mask, dim=1).mean()),
                    "objective/non_score_reward": float(non_score.mean()),
                    "objective/rlhf_reward": float((ro.scores + non_score).mean()),
                    "objective/entropy": float(masked_sum(-ro.logprobs, mask, dim=1).mean()),
                    "policy/entropy_avg": ro.entropy,  # of π_old, over the batch's response tokens
                    "policy/approxkl_avg": mean(stats["approxkl"]),
                    "policy/clipfrac_avg": mean(stats["pg_clipfrac"]),
                    "loss/policy_avg": mean(stats["pg_loss"]),
                    "loss/value_avg": mean(stats["vf_loss"]),
                    "val/clipfrac_avg": mean(stats["vf_clipfrac"]),
                    "val/ratio": mean(stats["ratio"]),
                    "val/mean_value": float(masked_mean(ro.values, mask)),
                    "val/advantage_std": float(masked_mean(advantages**2, mask).sqrt()),
                    "grad_norm": mean(stats["grad_norm"]),
                    "beta_next": self.kl_ctl.value,
                    "learning_rate": lr,
                    "kl_budget/rollback": 0,
                    "kl_budget/rollbacks": self.kl_budget.rollbacks,
                }
            ),
        }

    def keep_tokens(self, ro: Rollout, mask: torch.Tensor, beta: float, terms: dict | None) -> None:
        """The update's per-token store (``tokens.py``) into ``run_dir``, when one is set. ``terms``: the
        update's kl, reward, return, advantage_raw, advantage, ratio and clipped ([B, R]); None for a batch
        that undid the previous update (no PPO epochs): its terms as the update would have had them, this
        process's share whitened alone, and ratio NaN."""
        if self.run_dir is None:
            return
        cfg, updated = self.cfg, terms is not None
        if not updated:
            rewards, _, kl = compute_rewards(ro.scores, ro.logprobs, ro.ref_logprobs, mask, beta, cfg.kl_estimator)
            adv_raw, returns = gae(rewards, ro.values, mask, cfg.gamma, cfg.lam)
            nan = torch.full_like(mask, float("nan"))
            terms = {"kl": kl, "reward": rewards, "return": returns, "advantage_raw": adv_raw, "advantage": whiten(adv_raw, mask)}
            terms.update(ratio=nan, clipped=torch.zeros_like(mask, dtype=torch.bool))
        ids = ro.batch.response_ids  # [B, R]
        text = self.tok.batch_decode(ids.reshape(-1, 1).tolist())  # each token alone
        R = ids.shape[1]
        table = token_table(
            token_ids=ids,
            tokens=[text[b * R : (b + 1) * R] for b in range(ids.shape[0])],
            mask=mask,
            scores=ro.scores,
            queries=ro.queries,
            responses=ro.responses,
            terms={"logprob_old": ro.logprobs, "logprob_ref": ro.ref_logprobs, "value": ro.values, **terms},
            scalars={"beta": beta, "gamma": cfg.gamma, "lam": cfg.lam, "cliprange": cfg.cliprange, "kl_estimator": cfg.kl_estimator},
            updated=updated,
        )
        save_update(self.run_dir, self.step_no + 1, table)

    def all_params(self) -> list[torch.Tensor]:
        """Every trainable weight (policy and value head): what the optimiser steps and the KL budget snapshots."""
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    # ------------------------------------------------------------------ KL budget before judging
    def check_budget(self) -> dict:
        """Judge the policy that the last update produced, *before* it is evaluated or saved.

        Each update is judged by the next batch, so without this the policy evaluated (or kept at
        the end) would be the one update nobody checked; measured, one update can add 0.5–2 nats.
        This samples the next update's batch now (it is kept, and trains that update) and undoes the
        last update if the batch shows it past the budget, as ``step`` would."""
        ro = self.rollout()
        batch_kl = float(
            distributed.sum_all(masked_sum(ro.exact_kl, ro.batch.response_mask.float(), dim=1).mean()) / distributed.world_size()
        )
        undone = int(self.kl_budget.crossed(batch_kl))
        if undone:
            self.kl_budget.restore(self.all_params(), self.optimizer)  # that batch came from the undone policy
        else:
            self._checked = ro
        return {
            "kl_budget/check_kl": batch_kl,
            "kl_budget/undone_at_check": undone,
            "kl_budget/rollbacks": self.kl_budget.rollbacks,
            "beta_next": self.kl_ctl.value,
        }

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict:
        """Held-out evaluation (process 0 only: the weights are the same everywhere). A second Stop during it
        (``skip_eval``) abandons it between its batches: the record then has no evaluation."""
        if not distributed.is_main():
            return {}
        ev = evaluate_policy(
            self.policy.model,
            self.tok,
            self.reward_fn,
            EvalConfig(),
            reference=self.policy.frozen_reference,
            gold_fn=self.gold_fn,
            cancel=lambda: self.skip_eval,
        )
        if ev is None:
            return {}
        self.last_eval = ev
        return eval_record(ev)

    # ------------------------------------------------------------------ the loop
    def train(self) -> Iterator[dict]:
        """Run the updates; yield one record per update (eval keys merged in when evaluated).

        Ends on ``cfg.steps``, ``cfg.max_seconds`` of training time, ``stop()`` returning True, or a
        non-finite loss ("diverged at step k"). Closing the generator stops after the current update."""
        cfg = self.cfg
        clock = TrainingClock(cfg.max_seconds, cfg.eval_at_seconds, slack=1.5 if self.kl_budget.budget else 1.0)
        try:
            if cfg.eval_at_start:
                yield {"step": 0, "time_s": 0.0, "wall_s": 0.0, "beta": self.kl_ctl.value, **self.evaluate()}
            while self.step_no < cfg.steps:
                if self.stop():
                    self.status, self.message = "stopped", f"stopped by request after step {self.step_no}"
                    break
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    record = self.step()
                except FloatingPointError as exc:
                    self.status, self.message = "diverged", f"diverged at step {self.step_no + 1}: {exc}"
                    yield {"step": self.step_no + 1, "time_s": clock.time_s, "diverged": True}
                    break
                dt = distributed.max_all(time.perf_counter() - t0)  # processes agree on the clock
                self.step_no += 1
                clock.step_done(dt)
                record.update(
                    {"time_s": clock.time_s, "time/update": dt, "cpu_per_wall": (time.process_time() - c0) / dt}
                )  # ≈ threads when the CPU is ours alone
                budget_hit = clock.out_of_time()
                stopping = self.stop()  # a Stop during this update: it is the last, evaluated unless a second Stop skips it
                last = self.step_no >= cfg.steps or budget_hit or stopping
                final_eval = cfg.eval_final and not (stopping and self.skip_eval)
                due = clock.eval_due() or bool(cfg.eval_every and self.step_no % cfg.eval_every == 0) or (last and final_eval)
                if (due or last) and self.kl_budget.budget and not record.get("kl_budget/rollback"):
                    t1 = time.perf_counter()  # judge this update first
                    record.update(self.check_budget())
                    clock.add(distributed.max_all(time.perf_counter() - t1))
                    record["time_s"] = clock.time_s
                if due:
                    record.update(self.evaluate())
                record["wall_s"] = clock.wall_s
                if self.checkpoint is not None:
                    self.checkpoint(self.policy, self.step_no)
                yield record
                if budget_hit and self.step_no < cfg.steps:
                    self.message = f"time budget of {cfg.max_seconds:g} s reached after step {self.step_no}"
                    break
            if self.status == "running":
                self.status = "finished"
                self.message = self.message or f"finished {self.step_no} updates in {clock.time_s:.0f} s of training"
            if (
                self.status != "diverged" and cfg.eval_final and not self.skip_eval and distributed.is_main()
            ):  # part of the final evaluation
                self.before_after = before_after(self.policy, self.reward_fn, cfg.response_tokens[1])
        finally:
            if self.status == "running":  # closed from outside (e.g. the UI cancelled the generator)
                self.status, self.message = "stopped", f"stopped after step {self.step_no}"
            self.time_s = clock.time_s
