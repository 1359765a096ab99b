"""The Goodhart preset pair: its configs validate and meet (the PPO preset trains on the reward-model
preset's run, with the gold that labelled its pairs); the shipped pairs are labelled by the gold spec,
recomputed by hand (VADER's own analyzer, a word-prefix check, bigrams counted); the over-optimisation
panel marks the gold's peak where a hand computation puts it. The ``fluency`` and ``relevance``
components against a plain transformers loop (tiny model; the default model once, with the pairs)."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from rlhf_demo.data import goodhart
from rlhf_demo.data.preferences import load_preferences
from rlhf_demo.plots.overopt import gold_peak, heldout_windows, overopt_figure
from rlhf_demo.ppo.config import preset as ppo_preset
from rlhf_demo.reward_model.config import RewardConfig
from rlhf_demo.rewards.components import FluencyReward, RelevanceReward, mean_logprob
from rlhf_demo.rewards.functions import make_reward, score_pairs
from rlhf_demo.rewards.spec import parse_spec

NAN = math.nan


def test_the_preset_pair_validates_and_meets():
    rm = RewardConfig.preset("goodhart").validate()
    assert rm.preferences == goodhart.SOURCE == "goodhart" and rm.max_seconds > 0
    ppo = ppo_preset("goodhart").validate()
    assert ppo.reward == f"rm:{goodhart.RM_RUN}" and ppo.gold_reward == goodhart.GOLD
    assert ppo.eval_at_start and ppo.eval_every > 0 and ppo.beta > 0 and ppo.kl_budget > 0  # held-out curve from the base
    beta0 = ppo_preset("goodhart", beta=0.0, kl_budget=0.0).validate()  # the bench's β = 0 run
    assert beta0.beta == 0 and beta0.gold_reward == goodhart.GOLD
    terms = {t.name: t.weight for t in parse_spec(goodhart.GOLD)}
    assert terms == {"vader-positive": 1.0, "on-topic": 1.0, "repetition": -2.0, "fluency": 1.0, "relevance": 1.0}
    for cfg in (RewardConfig, type(ppo)):
        assert "goodhart" in cfg.PRESET_LABELS


def plain_mean_logprob(model, tok, query: str | None, response: str) -> float:
    """log π(response | query) / T by hand: one unpadded forward pass of query + response ids, the
    log-softmax at each position before a response token, summed in a loop, over T. ``query=None``: the
    response alone, after the BOS token (π(response))."""
    import torch

    q = [tok.bos_token_id] if query is None else tok(query, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([q + r])).logits[0].double()
    return sum(float(torch.log_softmax(logits[len(q) - 1 + t], -1)[r[t]]) for t in range(len(r))) / len(r)


QUERIES = ["This movie was", "The plot of this film", "I watched it twice and"]
RESPONSES = [" a delight from start to finish.", " story could depict characters navigating", " wow"]


def test_fluency_is_the_mean_token_logprob_by_hand(tiny_bundle, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()  # a second, plain copy of the weights
    want = [plain_mean_logprob(plain, tiny_bundle.tokenizer, q, r) for q, r in zip(QUERIES, RESPONSES)]
    fluency = FluencyReward(tiny_bundle, batch_size=2)  # rows of different lengths, padded, in two batches
    got = score_pairs(fluency, QUERIES, RESPONSES)
    assert got == pytest.approx(want, abs=1e-4) and len(set(round(g, 3) for g in got)) == 3
    assert fluency.last_components == {"fluency": got}
    assert mean_logprob(tiny_bundle, ["x"], [""]) == [0.0]  # no response token: nothing to judge


def test_relevance_is_the_pointwise_mutual_information_by_hand(tiny_bundle, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = tiny_bundle.tokenizer
    assert tok.bos_token_id is not None
    want = [plain_mean_logprob(plain, tok, q, r) - plain_mean_logprob(plain, tok, None, r) for q, r in zip(QUERIES, RESPONSES)]
    relevance = RelevanceReward(tiny_bundle, batch_size=2)
    got = score_pairs(relevance, QUERIES, RESPONSES)
    assert got == pytest.approx(want, abs=1e-4) and relevance.last_components == {"relevance": got}
    assert relevance.name == "relevance" and make_reward("relevance").name == "relevance"
    assert relevance(["This movie was great"]) == [0.0]  # a whole text has no opening of its own to depend on


def hand_gold(prompt: str, response: str, model, tok) -> float:
    """VADER compound of prompt + response, + 1 when the response has a word starting with a film word,
    − 2 × (1 − distinct word bigrams / word bigrams of the response), + the mean token log-prob of
    the response given the prompt under the default model (``plain_mean_logprob``), + that minus the
    response's mean token log-prob after the BOS token alone (relevance)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from rlhf_demo.evaluate import FILM_WORDS

    vader = SentimentIntensityAnalyzer().polarity_scores(prompt + response)["compound"]
    on_topic = any(w.startswith(FILM_WORDS) for w in re.findall(r"[a-z][a-z-]*", response.lower()))
    words = response.split()
    bigrams = list(zip(words, words[1:]))
    rep = 1 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    fluency = plain_mean_logprob(model, tok, prompt, response)
    return vader + float(on_topic) - 2 * rep + fluency + (fluency - plain_mean_logprob(model, tok, None, response))


def test_the_shipped_pairs_are_labelled_by_the_gold(default_bundle):
    model, tok = default_bundle.model, default_bundle.tokenizer
    gold = make_reward(goodhart.GOLD)
    assert gold.parts[-2][1].bundle is default_bundle is gold.parts[-1][1].bundle  # fluency, relevance: the registry's default model
    salad = " story could depict characters navigating a compelling storytelling character's relatable characters"
    natural = " a delight from start to finish, with a cast that clearly had fun."
    f_salad, f_natural = score_pairs(gold.parts[-2][1], ["The plot of this film"] * 2, [salad, natural])
    assert f_salad == pytest.approx(plain_mean_logprob(model, tok, "The plot of this film", salad), abs=1e-3)
    assert f_natural - f_salad > 1.0  # what the other components cannot see
    prefs = load_preferences("goodhart")
    assert prefs.source == str(goodhart.PAIRS) and len(prefs) >= 300 and not prefs.errors
    for row in prefs.rows[:4]:
        c, r = (hand_gold(row["prompt"], row[k], model, tok) for k in ("chosen", "rejected"))
        assert row["chosen_score"] == pytest.approx(c, abs=2e-3) and row["rejected_score"] == pytest.approx(r, abs=2e-3)
        assert c > r
    # not VADER's pairs relabelled: the gold's other terms decide some pairs against VADER
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    against = sum(
        vader.polarity_scores(p["prompt"] + p["chosen"])["compound"] < vader.polarity_scores(p["prompt"] + p["rejected"])["compound"]
        for p in prefs.rows
    )
    assert against >= 0.05 * len(prefs)


def run_frame(gold: list[float], kl: list[float], proxy: list[float]) -> pd.DataFrame:
    """A run's records: one batch row per step, held-out values on every step."""
    n = len(gold)
    return pd.DataFrame(
        {
            "step": list(range(1, n + 1)),
            "objective/kl_exact": kl,
            "reward_mean": proxy,
            "gold_reward_mean": gold,
            "eval/kl": kl,
            "eval/reward_mean": proxy,
            "eval/gold_reward_mean": gold,
        }
    )


def test_heldout_windows_and_the_peak_by_hand():
    df = run_frame([0.1, 0.3, 0.5, 0.4, 0.2, 0.0], [0.0, 1.0, 2.0, 4.0, 8.0, 16.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    win = heldout_windows(df.sample(frac=1.0, random_state=0))  # any row order: windows follow the steps
    assert list(win["step"]) == [3, 4, 5, 6]
    assert list(win["gold"]) == pytest.approx([0.3, 0.4, 1.1 / 3, 0.2])
    assert list(win["kl"]) == pytest.approx([1.0, 7 / 3, 14 / 3, 28 / 3])
    assert gold_peak(df) == {"kl": pytest.approx(7 / 3), "gold": pytest.approx(0.4), "source": "held-out"}
    # two evaluations only: the peak of the batch gold smoothed along KL (3 neighbours, fewer at the ends):
    # KL 0, 1, 2, 3 and gold .1, .6, .2, 0 → (0.5, 0.35), (1, 0.3), (2, 0.8/3), (2.5, 0.1)
    few = run_frame([0.1, 0.6, 0.2, 0.0], [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]).assign(
        **{"eval/kl": [0.0, NAN, NAN, 3.0], "eval/gold_reward_mean": [0.1, NAN, NAN, 0.0], "eval/reward_mean": [0.0, NAN, NAN, 3.0]}
    )
    assert gold_peak(few) == {"kl": pytest.approx(0.5), "gold": pytest.approx(0.35), "source": "batch"}
    assert gold_peak(pd.DataFrame({"step": [1], "reward_mean": [0.1], "objective/kl_exact": [0.2]})) is None


def test_the_panel_marks_each_runs_gold_peak():
    a = run_frame([0.1, 0.3, 0.5, 0.4, 0.2, 0.0], [0.0, 1.0, 2.0, 4.0, 8.0, 16.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).assign(run="beta0")
    b = run_frame([0.1, 0.2, 0.3, 0.35], [0.0, 0.5, 1.0, 1.5], [0.0, 0.5, 1.0, 1.5]).assign(run="preset")
    fig = overopt_figure(pd.concat([a, b], ignore_index=True))
    stars = {t.name.split(":")[0]: t for t in fig.data if "peak" in t.name}
    assert set(stars) == {"beta0", "preset"}
    assert list(stars["beta0"].x) == pytest.approx([7 / 3]) and list(stars["beta0"].y) == pytest.approx([0.4])
    assert stars["beta0"].marker.symbol == "star" and stars["beta0"].yaxis == "y2" and stars["beta0"].text == ("peak +0.40",)
    assert list(stars["preset"].y) == pytest.approx([(0.2 + 0.3 + 0.35) / 3])  # the last window: still rising
    lines = {t.name.split(":")[0]: t.line.color for t in fig.data if t.name.endswith("gold (held-out ◆)")}
    assert stars["beta0"].marker.color == lines["beta0"] != stars["preset"].marker.color == lines["preset"]
    vlines = sorted(s.x0 for s in fig.layout.shapes)
    assert vlines == pytest.approx(sorted([7 / 3, 1.0]))
    held = next(t for t in fig.data if t.name == "beta0: gold (held-out ◆)")
    assert held.mode == "lines+markers" and list(held.x) == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]  # joined in step order


def test_rm_goodhart_rm_is_the_newest_run_of_the_reward_model_preset(tmp_path, monkeypatch):
    import json

    from rlhf_demo.rewards.learned import find_reward_model
    from rlhf_demo.runs.names import RUNS_ENV
    from rlhf_demo.ui.training_reward import GOODHART, SOURCES, source_for_preset

    def run(name: str, preset: str, started: str, algo: str = "reward") -> None:
        d = tmp_path / name
        (d / "policy").mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"algo": algo, "preset": preset, "started": started}))
        (d / "metrics.jsonl").write_text("")
        (d / "policy" / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS"}))

    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    run("reward-20261206-100000-aaaaaa", "goodhart", "2026-12-06 10:00:00")
    run("reward-20261206-120000-bbbbbb", "goodhart", "2026-12-06 12:00:00")  # the newest of the preset
    run("reward-20261206-130000-cccccc", "quick-cpu", "2026-12-06 13:00:00")  # newer, another preset
    run("ppo-20261206-140000-dddddd", "goodhart", "2026-12-06 14:00:00", algo="ppo")  # newer, a policy
    assert find_reward_model(goodhart.RM_RUN) == tmp_path / "reward-20261206-120000-bbbbbb" / "policy"
    run(goodhart.RM_RUN, "goodhart", "2026-12-06 09:00:00")  # a run named so wins, however old
    assert find_reward_model(goodhart.RM_RUN) == tmp_path / goodhart.RM_RUN / "policy"
    # the reward-model panel: the Goodhart preset picks the gold-labelled pairs, another preset gives them back
    assert source_for_preset("goodhart", SOURCES[0]) == GOODHART
    assert source_for_preset("quick-cpu", GOODHART) == SOURCES[0] and source_for_preset("quick-cpu", SOURCES[2]) == SOURCES[2]
