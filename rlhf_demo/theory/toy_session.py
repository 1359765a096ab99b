"""The toy policy gradient between clicks: settings from the tab's text boxes, a policy that keeps
learning across "Step" and "Run", and DataFrames for its figures (the Theory tab's view model).

``ToySession`` owns the logits θ [W], the step counter and the history of π_t(word); each method
returns plain numbers or DataFrames, so the UI only formats them. The maths is ``theory.toy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch

from rlhf_demo.theory.optimal import TheoryInputError, log_partition
from rlhf_demo.theory.toy import ToyConfig, ToyStep, check_steps, toy_initial_logits, toy_metrics, toy_run

MAX_HISTORY = 5000
"""Steps of the history kept per session (older ones are dropped from the plot)."""
RUN_CHUNK = 25
"""Steps between two views of a long run."""
MAX_LIST_CHARS = 2000
"""Longest words / rewards / probabilities text (the toy has at most 12 words)."""


def parse_list(text: str, what: str, cast=str) -> tuple:
    """ "a, b, c" → (cast(a), cast(b), cast(c)); blanks dropped; a clear error for a bad number."""
    if text is not None and not isinstance(text, str):
        raise TheoryInputError(f"{what}: comma-separated text please, got {type(text).__name__}")
    if len(text or "") > MAX_LIST_CHARS:
        raise TheoryInputError(f"{what}: at most {MAX_LIST_CHARS} characters, got {len(text)}")
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    try:
        return tuple(cast(x) for x in items)
    except ValueError as exc:
        raise TheoryInputError(f"{what}: comma-separated numbers please ({exc})") from exc


def toy_config_from_text(
    words: str, rewards: str, ref_probs: str, lr: float, batch_size: int, baseline: bool, kl_beta: float, seed: int | None
) -> ToyConfig:
    """A validated ToyConfig from the tab's widgets: comma-separated words, rewards and (blank =
    uniform) reference probabilities, and the numbers."""
    try:
        lr, batch_size, kl_beta = float(lr), int(batch_size), float(kl_beta)
    except (TypeError, ValueError) as exc:
        raise TheoryInputError(f"learning rate, N and β must be numbers ({exc})") from exc
    return ToyConfig(
        words=parse_list(words, "words"),
        rewards=parse_list(rewards, "rewards", float),
        ref_probs=parse_list(ref_probs, "reference probabilities", float) or None,
        lr=lr,
        batch_size=batch_size,
        baseline=bool(baseline),
        kl_beta=kl_beta,
        seed=int(seed or 0),
    ).validate()


@dataclass
class ToySession:
    """One learner's toy policy: θ, the steps taken, π over the steps, and the last step's details."""

    cfg: ToyConfig
    logits: torch.Tensor  # [W] θ
    step: int = 0
    history: list[dict] = field(default_factory=list)  # {"step": t, word: π_t(word), …} per step
    last: ToyStep | None = None

    @classmethod
    def start(cls, cfg: ToyConfig) -> ToySession:
        """A fresh policy at the reference (θ = log π_ref), step 0."""
        cfg.validate()
        theta = toy_initial_logits(cfg)
        return cls(cfg, theta, 0, [cls._row(cfg, 0, torch.softmax(theta, -1))])

    @classmethod
    def resume(cls, previous: ToySession | None, cfg: ToyConfig) -> ToySession:
        """Go on from ``previous`` under the settings ``cfg`` (lr, N, β, rewards may change between
        clicks); start afresh when there is no previous session or its words differ."""
        cfg.validate()
        if previous is None or previous.cfg.words != cfg.words or previous.logits.shape != (len(cfg.words),):
            return cls.start(cfg)
        return cls(cfg, previous.logits, previous.step, list(previous.history), previous.last)

    @staticmethod
    def _row(cfg: ToyConfig, step: int, probs: torch.Tensor) -> dict:
        return {"step": step, **dict(zip(cfg.words, probs.tolist()))}

    def advance(self, steps: int = 1) -> ToyStep:
        """Take ``steps`` REINFORCE steps (seeded by (seed, step): resuming equals one long run)."""
        for rec in toy_run(self.cfg, steps, self.logits, self.step):
            self.last = rec
            self.history.append(self._row(self.cfg, rec.step, rec.probs_after))
        self.history = self.history[-MAX_HISTORY:]
        self.logits, self.step = self.last.logits_after, self.last.step
        return self.last

    def run(self, steps: int, chunk: int = RUN_CHUNK) -> Iterator[ToySession]:
        """Take ``steps`` steps in chunks of ``chunk``, yielding the session after each chunk (a bad
        ``steps`` raises here, before the first step)."""
        check_steps(steps)

        def chunks():
            done = 0
            while done < steps:
                n = min(chunk, steps - done)
                self.advance(n)
                done += n
                yield self

        return chunks()

    def optimal(self) -> list[float] | None:
        """π*(word) ∝ π_ref·exp(r/β_kl) (None without a KL penalty)."""
        opt = self.cfg.optimal_probs()
        return None if opt is None else opt.tolist()

    def summary(self) -> dict:
        """step, expected_reward, kl, objective, tv_to_optimal of the current policy, and beta_log_z =
        β·log Z (None without a KL penalty): at π* every word's score r − β·log(π*/π_ref) equals it."""
        out = {"step": self.step, **toy_metrics(self.cfg, self.logits), "beta_log_z": None}
        if self.cfg.kl_beta > 0:
            out["beta_log_z"] = self.cfg.kl_beta * log_partition(self.cfg.log_ref, self.cfg.reward_tensor, self.cfg.kl_beta)
        return out

    def probs_frame(self) -> pd.DataFrame:
        """One row per word: before the last step, after REINFORCE, after max-likelihood, optimal
        (before any step: only the current policy as ``before``, and ``optimal``)."""
        opt = self.cfg.optimal_probs()
        if self.last is not None:
            return self.last.probs_table(opt)
        out = pd.DataFrame({"word": list(self.cfg.words), "before": torch.softmax(self.logits, -1).numpy()})
        if opt is not None:
            out["optimal"] = opt.numpy()
        return out

    def samples_frame(self) -> pd.DataFrame:
        """The last step's samples (``ToyStep.samples_table``); empty before the first step."""
        return self.last.samples_table() if self.last is not None else pd.DataFrame()

    def history_frame(self) -> pd.DataFrame:
        """Columns step and one per word: π_t(word) for the kept steps."""
        return pd.DataFrame(self.history)
