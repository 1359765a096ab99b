"""The KL tab's computations served to many users at once (see ``rlhf_demo/shared_work.py``).

* Identical requests (same models, temperature, prompt, response or length and seed) are ONE
  computation: thirty students pressing *Compute KL* on the defaults get one result.
* Sampled responses with the same models, temperature, prompt and length run as ONE batch
  (:func:`~rlhf_demo.kl.analysis.token_kl_batch`; seeds differ per row), at most ``MAX_BATCH_CELLS``
  rows × tokens per batch (each holds both models' logits, [rows, tokens, V]).
* Every computation holds the server's one model lock, as the Playground's batches do.
"""

from __future__ import annotations

from rlhf_demo.kl.analysis import TokenKLResult, token_kl, token_kl_batch
from rlhf_demo.kl.lab import EstimatorLabConfig, EstimatorLabResult, estimator_lab
from rlhf_demo.shared_work import SharedWork

MAX_BATCH_CELLS = 256
"""Rows × response tokens of one KL batch (256 × 49 152 float32 logits per model ≈ 50 MB)."""


def _model_id(bundle) -> tuple:
    return (bundle.name, id(bundle))  # the loaded object: a model reloaded under the same name is another


class KLService:
    """Thread-safe; one per app (its dedupe cache), all sharing the process's model lock."""

    def __init__(self):
        self.work = SharedWork(size=lambda item: item[1], max_size=MAX_BATCH_CELLS)

    def token_kl(
        self,
        policy,
        reference,
        prompt: str,
        response: str | None = None,
        *,
        max_new_tokens: int = 24,
        policy_temperature: float = 1.0,
        seed: int = 0,
    ) -> TokenKLResult:
        """What :func:`~rlhf_demo.kl.analysis.token_kl` returns, shared with identical requests and
        batched with compatible ones. The result is shared: do not modify it."""
        models = (_model_id(policy), _model_id(reference), float(policy_temperature), prompt)
        if response is not None:  # a typed response: deduplicated, never batched
            key = ("typed", *models, response)
            return self.work.run(
                key,
                key,
                (None, len(response)),
                lambda _: [token_kl(policy, reference, prompt, response, policy_temperature=policy_temperature)],
            )
        group = ("sampled", *models, max_new_tokens)
        return self.work.run(
            (*group, seed),
            group,
            (seed, max_new_tokens),
            lambda items: token_kl_batch(
                policy, reference, prompt, [s for s, _ in items], max_new_tokens=max_new_tokens, policy_temperature=policy_temperature
            ),
        )

    def estimator_lab(self, policy, reference, prompt: str, cfg: EstimatorLabConfig) -> EstimatorLabResult:
        """:func:`~rlhf_demo.kl.lab.estimator_lab`, shared with identical requests (already a batch itself)."""
        key = (
            "lab",
            _model_id(policy),
            _model_id(reference),
            prompt,
            cfg.n_samples,
            cfg.response_tokens,
            float(cfg.policy_temperature),
            cfg.seed,
            cfg.batch_size,
        )
        return self.work.run(key, key, (None, 0), lambda _: [estimator_lab(policy, reference, prompt, cfg)])
