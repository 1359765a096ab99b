"""The token inspector's renderers (``rlhf_demo.plots.tokens``) on hand-made dicts of the
``inspect_run`` schemas: colours by sign, the formula panel's numbers and the branch of the min it
names, the KL penalty's share, DPO's sums and σ(margin), GRPO's group, and escaping."""

from __future__ import annotations

import math
import re

import pytest

from rlhf_demo.plots.tokens import (
    DOWN,
    UP,
    ZERO,
    clip_terms,
    colour,
    default_key,
    formula_html,
    kl_share,
    sigmoid,
    strip_html,
    token_choices,
    view_kind,
)


def _tok(token, advantage, ratio=1.0, kl=0.01, reward=-0.001, value=0.1, ret=0.2, clipped=False):
    return {
        "token": token,
        "token_id": 7,
        "logprob_old": -1.0,
        "logprob_ref": -1.1,
        "kl": kl,
        "reward": reward,
        "value": value,
        "return": ret,
        "advantage_raw": ret - value,
        "advantage": advantage,
        "ratio": ratio,
        "clipped": clipped,
    }


def ppo(tokens) -> dict:
    return {
        "algo": "ppo",
        "step": 2,
        "episode": 1,
        "undone": False,
        "query": "The film <b>was</b>",
        "response": "".join(t["token"] for t in tokens),
        "score": 0.9,
        "beta": 0.1,
        "gamma": 1.0,
        "lam": 0.95,
        "cliprange": 0.2,
        "tokens": tokens,
    }


def _span(html_text: str, key: str) -> str:
    m = re.search(rf'<span class="tok ([^"]*)" data-index="{re.escape(key)}"[^>]*style="background:rgb\((\d+),(\d+),(\d+)\)', html_text)
    assert m, f"no span for {key}"
    return m.group(1), tuple(int(x) for x in m.group(2, 3, 4))


def test_positive_advantage_is_up_blue_and_negative_is_down_orange_symmetric_around_zero():
    d = ppo([_tok(" great", 0.8), _tok(" dull", -0.8), _tok(" and", 0.0), _tok(" so", 0.2)])
    out = strip_html(d)
    (c_up, rgb_up), (c_down, rgb_down), (c_zero, rgb_zero), (_, rgb_small) = (_span(out, k) for k in "0123")
    assert (c_up.split()[0], c_down.split()[0], c_zero.split()[0]) == (UP, DOWN, ZERO)
    assert rgb_up[2] > rgb_up[0] and rgb_down[0] > rgb_down[2]  # blue up, orange down
    assert rgb_zero == (255, 255, 255)
    assert sum(rgb_small) > sum(rgb_up)  # a smaller |A| is paler on the same scale
    # symmetric: +a and −a are equally far from white
    assert colour(0.5, 1.0)[1] != colour(-0.5, 1.0)[1]
    up = [int(x) for x in re.findall(r"\d+", colour(0.5, 1.0)[1])]
    down = [int(x) for x in re.findall(r"\d+", colour(-0.5, 1.0)[1])]
    full_up = [int(x) for x in re.findall(r"\d+", colour(1, 1)[1])]
    full_down = [int(x) for x in re.findall(r"\d+", colour(-1, 1)[1])]
    assert all(abs((255 - u) * 2 - (255 - f)) <= 1 for u, f in zip(up, full_up))
    assert all(abs((255 - u) * 2 - (255 - f)) <= 1 for u, f in zip(down, full_down))
    assert "pushed up" in out and "pushed down" in out


def test_text_is_escaped_and_spaces_newlines_visible():
    d = ppo([_tok(" <script>", 0.5), _tok("\n", -0.1), _tok("a&b", 0.1)])
    d["query"] = 'He said "<i>hi</i>"'
    out = strip_html(d)
    assert "<script>" not in out and "&lt;script&gt;" in out and "<i>" not in out
    assert "␣&lt;script&gt;" in out and "↵" in out and "a&amp;b" in out
    assert token_choices(d)[0] == ("0: ␣<script> (A +0.500)", "0")  # a dropdown label (gradio escapes it)


@pytest.mark.parametrize(
    "ratio, adv, branch, objective, pushes",
    [
        (1.05, 0.5, "equal", 0.525, "up"),  # inside the range: both equal
        (1.5, 1.0, "clipped", 1.2, "none"),  # A > 0, r above 1+ε: clipped wins, no gradient
        (0.5, 1.0, "unclipped", 0.5, "up"),  # A > 0, r below 1−ε: unclipped (pessimistic) wins
        (1.5, -1.0, "unclipped", -1.5, "down"),  # A < 0, r above 1+ε: unclipped wins, pushed down
        (0.5, -1.0, "clipped", -0.8, "none"),  # A < 0, r below 1−ε: clipped wins, no gradient
    ],
)
def test_clip_terms_pick_the_branch_of_the_min(ratio, adv, branch, objective, pushes):
    c = clip_terms(ratio, adv, 0.2)
    assert c.branch == branch and c.pushes == pushes
    assert c.objective == pytest.approx(objective)
    assert c.objective == pytest.approx(min(ratio * adv, min(max(ratio, 0.8), 1.2) * adv))


def test_formula_panel_substitutes_the_tokens_numbers_negative_advantage_outside_the_range():
    d = ppo([_tok(" fine", 0.3), _tok(" dull", -1.0, ratio=1.5, kl=0.2, reward=-0.02 + 0.9, value=0.4, ret=0.1, clipped=False)])
    out = formula_html(d, "1")
    assert "min(1.500·(-1.000), clip(1.500, 0.80, 1.20)·(-1.000)) = min(-1.5000, -1.2000) = <b>-1.5000</b>" in out
    assert "the unclipped term won" in out and "pushed down" in out
    # token reward: −β·kl = −0.02, the rest (the score on the last token) 0.9: the KL share ≈ 2 %
    assert "−0.1·(+0.2000) + (+0.9000) = +0.8800" in out and "share 2.2%" in out
    assert "V = +0.4000, return G = +0.1000: G − V = A_raw = -0.3000" in out and "overestimated" in out
    # A < 0 with r below the range: the clipped term wins, no gradient
    d["tokens"][1]["ratio"] = 0.5
    out = formula_html(d, "1")
    assert "min(-0.5000, -0.8000) = <b>-0.8000</b>" in out and "the clipped term won" in out and "not moved" in out
    assert "Click a token" in formula_html(d, "9")


def test_kl_share_and_default_key():
    penalty, rest, share = kl_share(kl=0.5, beta=0.2, reward=-0.1)
    assert (penalty, rest, share) == (pytest.approx(-0.1), pytest.approx(0.0), pytest.approx(1.0))  # not the last token
    penalty, rest, share = kl_share(kl=0.5, beta=0.2, reward=0.2)
    assert rest == pytest.approx(0.3) and share == pytest.approx(0.1 / 0.4)
    assert default_key(ppo([_tok("a", 0.1), _tok("b", -0.9), _tok("c", 0.5)])) == "1"
    assert default_key(ppo([])) is None


def dpo() -> dict:
    beta = 0.1

    def side(text, pairs):
        toks = [
            {"token": t, "token_id": i, "logp_policy": p, "logp_ref": r, "implicit_reward": beta * (p - r)}
            for i, (t, p, r) in enumerate(pairs)
        ]
        return {"text": text, "reward": sum(t["implicit_reward"] for t in toks), "tokens": toks}

    chosen = side(" good film", [(" good", -1.0, -2.0), (" film", -0.5, -0.4)])
    rejected = side(" bad", [(" bad", -3.0, -1.0)])
    return {
        "algo": "dpo",
        "step": 3,
        "pair": 0,
        "beta": beta,
        "prompt": "Review:",
        "prompt_ids": [1, 2],
        "chosen": chosen,
        "rejected": rejected,
        "margin": chosen["reward"] - rejected["reward"],
    }


def test_dpo_side_by_side_sums_margin_and_sigmoid():
    d = dpo()
    assert view_kind(d) == "pair"
    out = strip_html(d)
    assert _span(out, "chosen:0")[0].startswith(UP) and _span(out, "chosen:1")[0].startswith(DOWN)
    assert _span(out, "rejected:0")[0].startswith(DOWN)
    m = 0.09 - (-0.2)
    assert "chosen: Σ = +0.090" in out and "rejected: Σ = -0.200" in out
    assert f"margin = chosen − rejected = {m:+.3f} · σ(margin) = {1 / (1 + math.exp(-m)):.3f}" in out
    f = formula_html(d, "chosen:0")
    assert "0.1·((-1.0000) − (-2.0000)) = <b>+0.1000</b>" in f and "σ(margin) = 0.572" in f
    assert [k for _, k in token_choices(d)] == ["chosen:0", "chosen:1", "rejected:0"]
    assert sigmoid(-800) == pytest.approx(0.0) and sigmoid(800) == 1.0


def grpo(rewards=(1.0, 0.0, 0.5), scale_rewards="group") -> dict:
    """A group of the ``grpo.inspect`` schema: mean 0.5, std 0.5 (advantages by hand, without TRL's 1e-4)."""
    mean, std = 0.5, 0.5
    completions = [
        {
            "text": f"c{g}",
            "reward": r,
            "advantage": (r - mean) / std if scale_rewards != "none" else r - mean,
            "tokens": [
                {"token": f" w{g}", "token_id": g, "logp": -1.0, "logp_old": -1.1, "logp_ref": -1.2, "kl": 0.01 * (g + 1), "ratio": 1.0}
            ],
        }
        for g, r in enumerate(rewards)
    ]
    group = {"prompt": "Q <b>", "mean": mean, "std": std, "completions": completions}
    return {
        "algo": "grpo",
        "step": 1,
        "episode": 0,
        "episodes": 2,
        "beta": 0.04,
        "cliprange": 0.2,
        "scale_rewards": scale_rewards,
        "group": group,
    }


def test_grpo_group_side_by_side_with_mean_std_and_k3():
    d = grpo()
    assert view_kind(d) == "group"
    out = strip_html(d)
    assert _span(out, "0:0")[0].startswith(UP) and _span(out, "1:0")[0].startswith(DOWN) and _span(out, "2:0")[0].startswith(ZERO)
    assert "group 0 (of 0–1) · group mean +0.500 · std 0.500" in out and "#0: reward +1.000 · A = +1.000" in out
    assert "Q &lt;b&gt;" in out and "<b>" not in out.split("Q &lt;b&gt;")[0][-40:]
    assert [k for _, k in token_choices(d)] == ["0:0", "1:0", "2:0"]
    f = formula_html(d, "1:0")
    assert "A = (reward − mean) / (std + 1e-4) = (+0.000 − (+0.500)) / (0.500 + 1e-4) = -1.0000" in f
    assert "β·k3 = 0.04·0.02000 = 0.00080" in f and "L − β·k3 = -1.0000 − 0.00080 = <b>-1.0008</b>" in f
    # TRL 1.16's default weighs k3 by the ratio
    d["use_bias_correction_kl"] = True
    d["group"]["completions"][1]["tokens"][0]["ratio"] = 1.5
    f = formula_html(d, "1:0")
    assert "β·r·k3 = 0.04·1.500·0.02000 = 0.00120" in f and "L − β·r·k3 = -1.5000 − 0.00120 = <b>-1.5012</b>" in f
    # Dr. GRPO: not divided; β = 0: no KL term
    d = grpo(scale_rewards="none")
    d["group"]["completions"][0]["tokens"][0].update(logp_ref=None, kl=None)
    f = formula_html(d, "0:0")
    assert "A = reward − mean = +1.000 − (+0.500) = +0.5000 (not divided" in f and "none: β = 0" in f


def test_a_batch_that_made_no_update_says_so_and_uses_r_equal_one():
    d = ppo([_tok(" so", 0.4)])
    d["updated"], d["tokens"][0]["ratio"], d["tokens"][0]["clipped"] = False, None, None
    out = formula_html(d, "0")
    assert "made none: no ratio" in out and "min(1.000·(+0.400)" in out and "clip active: —" in out
    assert "no update" in strip_html(d)
