"""Run comparison: runs table, stacked curves, reward–KL points, CSV and zip exports, figures; the
shipped base-model point; held-out keys of DPO runs written before the ``eval/`` rename."""

from __future__ import annotations

import json
import math
import zipfile

import pandas as pd
import pytest

from rlhf_demo.plots.runs import frontier_figure, overlay_figure
from rlhf_demo.runs.compare import (
    BASE_EVAL,
    TARGET_GAIN,
    TARGET_KL,
    base_point,
    eval_points,
    export_csv,
    frontier_target,
    load_curves,
    runs_table,
    with_held_out_keys,
    zip_policy,
)
from rlhf_demo.runs.folder import RunWriter


def make_run(root, name, algo, evals, legacy=False):
    """A finished run whose step s has held-out (reward, kl) = evals[s-1] (or none); ``legacy`` writes
    them under DPO's old top-level keys reward_mean / kl instead of eval/…."""
    w = RunWriter(root / name, {"algo": algo, "beta": 0.1, "seed": 0})
    for step, (r, kl) in enumerate(evals, 1):
        rec = {"step": step, "time_s": step * 2.0, "loss": 0.7 - 0.01 * step}
        if r is not None:
            rec.update({"reward_mean": r, "kl": kl} if legacy else {"eval/reward_mean": r, "eval/kl": kl, "eval/reward_sem": 0.04})
        w.log_metrics(rec)
    w.finish("finished", "ok")
    w.close()
    (root / name / "policy").mkdir()
    (root / name / "policy" / "adapter_config.json").write_text("{}")
    return root / name


def test_table_points_exports_and_figures(tmp_path):
    a = make_run(tmp_path, "dpo-a", "dpo", [(None, None), (0.3, 2.0), (0.45, 5.0)])
    b = make_run(tmp_path, "ppo-b", "ppo", [(0.2, 1.0)])
    table = runs_table([a, b])
    assert list(table["run"]) == ["dpo-a", "ppo-b"]
    assert table.loc[0, "held-out reward"] == 0.45 and table.loc[0, "held-out KL"] == 5.0
    assert table.loc[0, "steps done"] == 3 and table.loc[0, "status"] == "finished"
    pts = eval_points([a, b], base_reward=0.12)
    assert list(pts["run"]) == ["base model", "dpo-a", "dpo-a", "ppo-b"]
    assert pts["kl"].tolist() == [0.0, 2.0, 5.0, 1.0]
    assert pts["reward"].tolist() == [0.12, 0.3, 0.45, 0.2]
    csv = export_csv([a, b], tmp_path / "m.csv")
    df = pd.read_csv(csv)
    assert list(df.columns[:3]) == ["run", "algo", "step"] and len(df) == 4
    z = zip_policy(a, tmp_path / "p.zip")
    assert "dpo-a/policy/adapter_config.json" in zipfile.ZipFile(z).namelist()
    fig = frontier_figure(pts, target=(0.42, 6.0))
    assert len(fig.data) == 3 and fig.layout.xaxis.title.text.startswith("KL")
    assert "target: reward ≥ +0.42 at KL ≤ 6" in [a.text for a in fig.layout.annotations]
    ov = overlay_figure(load_curves([a, b]))
    assert {t.name for t in ov.data} == {"dpo-a", "ppo-b"}
    assert "No held-out" in frontier_figure(pd.DataFrame()).layout.annotations[0].text


def test_dpo_runs_written_before_the_rename_read_as_eval_keys(tmp_path):
    old = make_run(tmp_path, "dpo-old", "dpo", [(None, None), (0.25, 1.5)], legacy=True)
    new = make_run(tmp_path, "dpo-new", "dpo", [(0.35, 3.0)])
    pts = eval_points([old, new])
    assert list(pts["run"]) == ["dpo-old", "dpo-new"]
    assert pts["reward"].tolist() == [0.25, 0.35] and pts["kl"].tolist() == [1.5, 3.0]
    table = runs_table([old, new])
    assert table.loc[0, "held-out reward"] == 0.25 and table.loc[0, "held-out KL"] == 1.5
    curves = load_curves([old, new])
    assert curves.loc[curves["run"] == "dpo-old", "eval/kl"].dropna().tolist() == [1.5]
    titles = [a.text for a in overlay_figure(curves).layout.annotations]
    assert "Held-out reward" in titles and "Batch reward (PPO)" not in titles


def test_held_out_fallback_only_for_old_dpo_runs():
    legacy = pd.DataFrame({"step": [1, 2], "reward_mean": [None, 0.2], "kl": [None, 1.0]})
    assert with_held_out_keys(legacy, "dpo")["eval/reward_mean"].tolist()[1] == 0.2
    # PPO's top-level reward_mean / kl are batch statistics, never held-out ones
    assert "eval/reward_mean" not in with_held_out_keys(legacy, "ppo").columns
    # a DPO run with eval/ keys keeps them, whatever else it logs at the top level
    current = pd.DataFrame({"step": [1, 2], "kl": [0.5, 0.7], "eval/reward_mean": [None, 0.3], "eval/kl": [None, 2.0]})
    out = with_held_out_keys(current, "dpo")
    assert out["eval/kl"].tolist()[1] == 2.0 and math.isnan(out["eval/kl"].tolist()[0])


def test_base_point_is_shipped_and_independent_of_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing under the working directory is read
    base = base_point()
    shipped = json.loads(BASE_EVAL.read_text())
    assert base["reward_mean"] == pytest.approx(0.131) == shipped["reward_mean"]
    assert base["kl"] == 0.0 and base["n"] == 64 and "README" in base["source"]
    assert base["eval_config"]["n_prompts"] * base["eval_config"]["samples_per_prompt"] == base["n"]
    assert base_point(tmp_path / "missing.json") is None
    pts = eval_points([], base_reward=base["reward_mean"], base_sem=base["reward_sem"])
    assert pts.to_dict("records")[0] | {"time_s": 0.0} == {
        "run": "base model",
        "algo": "base",
        "label": "base model",
        "symbol": "star",
        "step": 0,
        "time_s": 0.0,
        "reward": 0.131,
        "kl": 0.0,
        "reward_sem": 0.04,
    }
    assert frontier_target(0.131) == pytest.approx((0.131 + TARGET_GAIN, TARGET_KL)) and frontier_target(None) is None


def test_reward_per_nat_in_the_table_and_by_hand(tmp_path):
    from rlhf_demo.runs.compare import MIN_KL_PER_NAT, reward_per_nat

    assert reward_per_nat(0.531, 0.131, 4.0) == pytest.approx(0.1)
    assert reward_per_nat(0.5, None, 4.0) is None and reward_per_nat(0.5, 0.1, MIN_KL_PER_NAT / 2) is None
    a = make_run(tmp_path, "ppo-a", "ppo", [(0.2, 0.0), (0.45, 5.0)])
    still = make_run(tmp_path, "ppo-still", "ppo", [(0.13, 0.0)])
    table = runs_table([a, still], base_reward=0.15)
    assert table.loc[0, "reward per nat"] == pytest.approx((0.45 - 0.15) / 5.0)
    assert pd.isna(table.loc[1, "reward per nat"])  # KL 0: nothing bought, nothing divided
    # without a base given, the shipped base evaluation is the reference
    assert runs_table([a]).loc[0, "reward per nat"] == pytest.approx(round((0.45 - base_point()["reward_mean"]) / 5.0, 3))


def test_on_topic_column_comes_from_the_last_evaluation(tmp_path):
    w = RunWriter(tmp_path / "r", {"algo": "ppo"})
    w.log_metrics({"step": 1, "eval/reward_mean": 0.3, "eval/kl": 2.0, "eval/on_topic": 0.5})
    w.log_metrics({"step": 2, "eval/reward_mean": 0.4, "eval/kl": 3.0, "eval/on_topic": 0.25})
    w.close()
    assert runs_table([tmp_path / "r"]).loc[0, "on topic"] == 0.25
    curves = load_curves([tmp_path / "r"])
    assert "Held-out on topic (share about a film)" in [a.text for a in overlay_figure(curves).layout.annotations]


def test_pi_star_is_shipped_and_drawn_from_the_base_point(tmp_path, monkeypatch):
    from rlhf_demo.runs.compare import PI_STAR, pi_star_curve

    monkeypatch.chdir(tmp_path)
    shipped = json.loads(PI_STAR.read_text())
    assert "bench/ppo_frontier.py" in shipped["made_by"] and shipped["n"] >= 64
    curve = pi_star_curve()
    assert len(curve) == len(shipped["optimum"]) >= 5
    assert curve["kl"].is_monotonic_increasing and (curve["kl"] > 0).all()
    assert curve["gain"].is_monotonic_increasing  # smaller β: more KL, more reward
    assert pi_star_curve(tmp_path / "missing.json").empty
    pts = eval_points([make_run(tmp_path, "ppo-b", "ppo", [(0.4, 5.0)])], base_reward=0.131)
    fig = frontier_figure(pts, target=frontier_target(0.131), pi_star=curve, base_reward=0.131)
    star = [t for t in fig.data if t.name.startswith("π*")]
    assert len(star) == 1 and star[0].x[0] == 0.0 and star[0].y[0] == pytest.approx(0.131)
    assert list(star[0].y[1:]) == pytest.approx(list(0.131 + curve["gain"]))
    assert len(frontier_figure(pts).data) == len(fig.data) - 1  # no π* without its data


def test_a_run_a_kl_stop_ended_is_shown_by_the_policy_it_kept(tmp_path):
    """The KL stop evaluates one step past the stop and saves the policy before it (summary's
    ``restored``): the table, the class's held-out rows and the ranking read that policy's evaluation."""
    from rlhf_demo.runs.compare import held_out_rows, kept_evaluation

    w = RunWriter(tmp_path / "bon", {"algo": "bon"})
    for step, reward, kl in ((0, 0.12, 0.0), (30, 0.40, 2.46), (31, 0.33, 2.63)):
        w.log_metrics({"step": step, "eval/reward_mean": reward, "eval/kl": kl, "eval/on_topic": 0.2})
    w.finish("finished", "held-out KL 2.63 passed the stop at step 31", restored={"step": 30, "eval/reward_mean": 0.40})
    w.close()
    row = runs_table([tmp_path / "bon"], base_reward=0.12).iloc[0]
    assert (row["held-out reward"], row["held-out KL"]) == (0.4, 2.46)
    assert row["reward per nat"] == pytest.approx(round((0.40 - 0.12) / 2.46, 3))
    held = held_out_rows([tmp_path / "bon"]).iloc[0]
    assert (held["held-out reward"], held["held-out KL"], held["base reward"]) == (0.4, 2.46, 0.12)
    ev = pd.DataFrame({"step": [1, 2], "eval/kl": [1.0, 2.0]})
    assert kept_evaluation(ev, {})["step"] == 2 and kept_evaluation(ev, {"restored": {"step": 7}})["step"] == 2  # no such step: the last
    # the shipped best-of-N example: its kept step 30 (+0.403 at 2.46 nats), not step 31 past the stop
    from rlhf_demo.runs.folder import example_runs

    bon = next(r for r in example_runs() if r.name == "example-bon")
    row = runs_table([bon]).iloc[0]
    assert (row["held-out reward"], row["held-out KL"]) == (0.403, 2.46)
