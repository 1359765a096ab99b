"""The frozen-trunk fast path (LoRA on the top layers only) and the exact KL of a PPO rollout.

The fast path must give the same numbers as a full forward, for the policy after updates (LoRA ≠ 0)
and for the reference; the rollout's exact KL must equal an explicit sum over the vocabulary."""

import math

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.decoding.sampling import left_pad, position_ids, sample_responses
from rlhf_demo.ppo.config import preset
from rlhf_demo.ppo.forward import forward_response
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.ppo.trunk import check_trunk, num_layers, top_forward

PROMPTS = ["The movie was", "I watched this film", "The acting in this", "What a story", "The ending"]


def chars(texts):
    """A reward that differs between any two texts of different lengths. The tiny random model's samples
    seldom hold a VADER word, so with VADER whether the policy moves would depend on which tokens a
    seed happens to draw."""
    return [len(t) / 20 for t in texts]


def tiny_cfg(model_dir, **kw):
    base = dict(
        model=str(model_dir),
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=2,
        steps=2,
        lr=3e-2,
        response_tokens=(5, 5),
        query_tokens=(1, 5),
        eval_final=False,
        device="cpu",
        lora_layers=1,
    )
    base.update(kw)
    return preset("quick-cpu", **base)


def test_top_forward_matches_full_forward_with_left_padding(tiny_bundle):
    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    ids, am = left_pad(
        [tok.encode("The movie was great"), tok.encode("Bad"), tok.encode("I watched this film twice")], tok.pad_token_id, "cpu"
    )
    pos = position_ids(am)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=am, position_ids=pos, output_hidden_states=True)
        top = top_forward(model, full.hidden_states[1], am, pos, 1, logits_to_keep=ids.shape[1], output_hidden_states=True)
    real = am.bool()
    assert torch.allclose(full.logits[real], top.logits[real], atol=1e-5)
    assert torch.allclose(full.hidden_states[-1][real], top.hidden_states[-1][real], atol=1e-5)
    assert len(model.model.layers) == num_layers(model) == 2  # the layer list is restored
    assert check_trunk(model, ids, am, pos, 1)
    assert not check_trunk(model, ids, am, pos, 0) and not check_trunk(model, ids, am, pos, 2)


def test_check_trunk_rejects_a_wrong_split(tiny_bundle):
    """Feeding the states entering layer 0 as if they entered layer 1 must be caught (the check can fail)."""
    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    ids, am = left_pad([tok.encode("The movie was great")], tok.pad_token_id, "cpu")
    pos = position_ids(am)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=am, position_ids=pos, output_hidden_states=True)
        wrong = top_forward(model, full.hidden_states[0], am, pos, 1, logits_to_keep=ids.shape[1])
    assert not torch.allclose(full.logits, wrong.logits, atol=1e-3)


def test_lora_only_on_top_layers_and_fast_path_equals_full_forward(tiny_model_dir):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir), prompts=PROMPTS, reward_fn=chars)
    assert tr.trunk_layer == 1
    lora_names = [n for n, p in tr.policy.model.named_parameters() if "lora_" in n]
    assert lora_names and all(".layers.1." in n for n in lora_names)
    records = list(tr.train())
    assert len(records) == 2 and all(math.isfinite(r["loss/policy_avg"]) for r in records)
    # after two updates the LoRA weights are non-zero: policy ≠ reference, and both paths must agree
    queries = [tr.tok.encode(p) for p in PROMPTS[:3]]
    batch = sample_responses(tr.policy.model, tr.tok, queries, 5, seed=3, keep_outputs=True, trunk_layer=tr.trunk_layer)
    assert batch.trunk.shape[:2] == (3, batch.input_ids.shape[1] - 1)
    with torch.no_grad():
        fast, v_fast = forward_response(tr.policy.model, batch, tr.value_head, trunk_layer=tr.trunk_layer)
        full, v_full = forward_response(tr.policy.model, batch, tr.value_head)
        with tr.policy.reference() as ref:
            ref_fast, _ = forward_response(ref, batch, trunk_layer=tr.trunk_layer)
            ref_full, _ = forward_response(ref, batch)
    assert torch.allclose(fast, full, atol=1e-4) and torch.allclose(v_fast, v_full, atol=1e-4)
    assert torch.allclose(ref_fast, ref_full, atol=1e-4)
    assert not torch.allclose(fast, ref_fast, atol=1e-3)  # the policy did move
    # the generation's own logits agree with the forward (old log-probs are taken from them)
    assert torch.allclose(batch.logits.float(), full, atol=1e-4)


def test_full_lora_has_no_trunk(tiny_model_dir):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir, lora_layers=0, steps=1), prompts=PROMPTS, reward_fn=chars)
    assert tr.trunk_layer is None
    assert any(".layers.0." in n for n, p in tr.policy.model.named_parameters() if "lora_" in n)


def test_rollout_exact_kl_is_an_explicit_vocabulary_sum(tiny_model_dir):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir, steps=3), prompts=PROMPTS, reward_fn=chars)
    records = list(tr.train())
    assert records[0]["objective/kl_exact"] == pytest.approx(0.0, abs=1e-6)  # policy = reference at the start
    assert records[-1]["objective/kl_exact"] > 1e-4
    ro = tr.rollout()
    B, R = ro.exact_kl.shape
    with torch.no_grad():
        pol, _ = forward_response(tr.policy.model, ro.batch)
        with tr.policy.reference() as ref:
            rl, _ = forward_response(ref, ro.batch)
    p = F.softmax(pol.double(), -1)
    lp, lr = F.log_softmax(pol.double(), -1), F.log_softmax(rl.double(), -1)
    for b, t in [(0, 0), (B - 1, R - 1), (1, R // 2)]:
        want = math.fsum((p[b, t] * (lp[b, t] - lr[b, t])).tolist())
        assert ro.exact_kl[b, t].item() == pytest.approx(want, rel=1e-3, abs=1e-6)
    assert (ro.exact_kl >= 0).all()


def test_controller_reads_the_exact_kl(tiny_model_dir):
    """With a tiny target, β must grow after an update, by the controller's formula on the batch's exact KL."""
    tr = PPOTrainer(tiny_cfg(tiny_model_dir, steps=3, kl_target=1e-6, kl_horizon=4.0, kl_budget=0.0), prompts=PROMPTS, reward_fn=chars)
    assert tr.cfg.adaptive_kl
    last = list(tr.train())[-1]
    err = min(max(last["objective/kl_exact"] / 1e-6 - 1, -0.2), 0.2)
    assert last["beta_next"] == pytest.approx(last["beta"] * (1 + err * 4 / 4.0), rel=1e-6)
    assert last["beta_next"] > last["beta"]


def test_beta_zero_turns_the_controller_off(tiny_model_dir):
    """β = 0 means no penalty: a KL target then has nothing to adapt (the rule the CLI alone knew before)."""
    assert not preset("course", beta=0.0).validate().adaptive_kl
    assert preset("course").validate().adaptive_kl


def test_kl_budget_undoes_the_update_that_crossed_it(tiny_model_dir):
    """Update 1 moves the policy; the batch of update 2 shows it past a tiny budget, so update 1 is
    undone (weights and optimiser state as before it) and update 2 is skipped. The restored policy is
    not judged again on the next batch: update 3 trains, update 4 is undone again."""
    tr = PPOTrainer(tiny_cfg(tiny_model_dir, steps=4, kl_budget=1e-4, kl_budget_lr_factor=1.0, beta=0.05), prompts=PROMPTS, reward_fn=chars)
    start = {n: p.detach().clone() for n, p in tr.policy.model.named_parameters() if p.requires_grad}
    it = tr.train()
    r1 = next(it)
    assert r1["kl_budget/rollback"] == 0
    moved = {n: p.detach().clone() for n, p in tr.policy.model.named_parameters() if p.requires_grad}
    assert any(not torch.equal(moved[n], start[n]) for n in start)
    r2 = next(it)
    assert r2["kl_budget/rollback"] == 1 and r2["objective/kl_exact"] > 1e-4
    assert all(torch.equal(p, start[n]) for n, p in tr.policy.model.named_parameters() if p.requires_grad)
    r3 = next(it)  # back at the start policy (KL 0): this update goes through
    assert r3["kl_budget/rollback"] == 0 and r3["objective/kl_exact"] == pytest.approx(0.0, abs=1e-6)
    assert any(not torch.equal(p, start[n]) for n, p in tr.policy.model.named_parameters() if p.requires_grad)
    r4 = next(it)
    assert r4["kl_budget/rollback"] == 1
    list(it)
    assert tr.kl_budget.rollbacks == 2 and tr.status == "finished"


def test_kl_budget_backtracks_the_step_after_an_undo_and_recovers(tiny_model_dir):
    """After an undone update the next one uses lr × factor; once the budget accepts an update the
    learning rate goes back up (up to lr)."""
    tr = PPOTrainer(
        tiny_cfg(tiny_model_dir, steps=4, kl_budget=1e-4, kl_budget_lr_factor=0.5, beta=0.05, lr=3e-2), prompts=PROMPTS, reward_fn=chars
    )
    it = tr.train()
    r1, r2, r3 = next(it), next(it), next(it)
    assert r1["learning_rate"] == pytest.approx(3e-2) and r2["kl_budget/rollback"] == 1
    assert r3["kl_budget/rollback"] == 0 and r3["learning_rate"] == pytest.approx(1.5e-2)  # the restored policy trains, half a step
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-2)
    tr.kl_budget.budget = 1e9  # the next batch accepts the half step
    r4 = next(it)
    assert r4["kl_budget/rollback"] == 0 and r4["learning_rate"] == pytest.approx(3e-2)


def test_the_last_update_is_judged_before_it_is_evaluated_or_saved(tiny_model_dir):
    """Each update is judged by the next batch; the last one has no next batch, so the trainer samples
    it before evaluating: past the budget, the policy kept is the one before that update."""
    strict = PPOTrainer(tiny_cfg(tiny_model_dir, steps=1, kl_budget=1e-4, beta=0.05, lr=3e-2), prompts=PROMPTS, reward_fn=chars)
    (rec,) = list(strict.train())
    assert rec["kl_budget/rollback"] == 0 and rec["kl_budget/undone_at_check"] == 1
    assert rec["kl_budget/check_kl"] > 1e-4 and strict.kl_budget.rollbacks == 1
    assert all((p == 0).all() for n, p in strict.policy.model.named_parameters() if "lora_B" in n)  # back to the reference
    loose = PPOTrainer(
        tiny_cfg(tiny_model_dir, steps=2, eval_every=1, kl_budget=1000.0, beta=0.05, lr=3e-2), prompts=PROMPTS, reward_fn=chars
    )
    r1, r2 = list(loose.train())
    assert r1["kl_budget/undone_at_check"] == 0 and "eval/kl" in r1
    # the batch the check sampled is the one the next update trains on (not sampled twice)
    assert r2["objective/kl_exact"] == r1["kl_budget/check_kl"]
    assert any((p != 0).any() for n, p in loose.policy.model.named_parameters() if "lora_B" in n)
