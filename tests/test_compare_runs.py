"""Run comparison: runs table, stacked curves, reward–KL points, CSV and zip exports, figures."""
from __future__ import annotations

import zipfile

import pandas as pd

from rlhf_demo.runs.compare import eval_points, export_csv, load_curves, runs_table, zip_policy
from rlhf_demo.plots.runs import frontier_figure, overlay_figure
from rlhf_demo.runs.folder import RunWriter


def make_run(root, name, algo, evals):
    w = RunWriter(root / name, {"algo": algo, "beta": 0.1, "seed": 0})
    for step, (r, kl) in enumerate(evals, 1):
        rec = {"step": step, "time_s": step * 2.0, "loss": 0.7 - 0.01 * step}
        if r is not None:
            rec.update({"eval/reward_mean": r, "eval/kl": kl, "eval/reward_sem": 0.04, "reward_mean": r, "kl": kl})
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
    csv = export_csv([a, b], tmp_path / "m.csv")
    df = pd.read_csv(csv)
    assert list(df.columns[:3]) == ["run", "algo", "step"] and len(df) == 4
    z = zip_policy(a, tmp_path / "p.zip")
    assert "dpo-a/policy/adapter_config.json" in zipfile.ZipFile(z).namelist()
    fig = frontier_figure(pts, target=(0.42, 6.0))
    assert len(fig.data) == 3 and fig.layout.xaxis.title.text.startswith("KL")
    ov = overlay_figure(load_curves([a, b]))
    assert {t.name for t in ov.data} == {"dpo-a", "ppo-b"}
    assert "No held-out" in frontier_figure(pd.DataFrame()).layout.annotations[0].text
