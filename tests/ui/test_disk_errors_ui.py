"""Disk and errors (issue 23, item 4) over HTTP, on the whole app served in-process (local use, runs of
each kind in the runs folder): ``/config`` holds no server path (model and reward choices are short
names), a lone surrogate sent to ``/generate`` gets the clear line (and ``gradio_client`` still serves), uploads are cleaned on Gradio's
schedule (``delete_cache``), and a CSV export leaves no temporary folder behind. No browser."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

ASSETS = Path(__file__).resolve().parents[2] / "rlhf_demo" / "assets"
REPO = ASSETS.parents[1]
PPO_RUN, REWARD_RUN = "ppo-20260101-000000-aaaaaa", "reward-20260101-000001-bbbbbb"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir, close_demo):
    from gradio_client import Client

    from rlhf_demo.ui.app import build_demo

    root = tmp_path_factory.mktemp("disk") / "runs"
    shutil.copytree(ASSETS / "example-ppo", root / PPO_RUN)
    shutil.copytree(ASSETS / "example-reward", root / REWARD_RUN)
    mp = pytest.MonkeyPatch()
    mp.setenv("RLHF_DEMO_RUNS", str(root))
    mp.setenv("RLHF_DEMO_TMP_AGE_S", "2")  # Gradio's cache: checked every second, files older than 2 s go
    for k in ("RLHF_DEMO_SHARED", "SPACE_ID", "RLHF_DEMO_TEACHER_KEY"):
        mp.delenv(k, raising=False)
    demo = build_demo()
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url.rstrip("/")
        yield SimpleNamespace(url=url, demo=demo, root=root, client=Client(url, verbose=False), tiny=str(tiny_model_dir))
    finally:
        close_demo(demo)
        mp.undo()


def test_config_holds_no_server_path_and_offers_short_names(app):
    with urllib.request.urlopen(f"{app.url}/config", timeout=30) as r:
        text = r.read().decode()
    for path in (str(REPO), str(app.root), str(Path.home() / ".cache")):
        assert path not in text, f"{path} in /config: …{text[max(0, text.find(path) - 200) : text.find(path) + 100]}…"
    config = json.loads(text)
    values = json.dumps(config)
    for short in ('"example-ppo"', f'"run:{PPO_RUN}"', '"rm:example-reward"', f'"rm:run:{REWARD_RUN}"'):
        assert short in values, short
    model_lists = [
        [c[1] for c in comp["props"]["choices"]]
        for comp in config["components"]
        if ["base: SmolLM2-135M-Instruct (default)", "default"] in (comp.get("props", {}).get("choices") or [])
    ]
    assert len(model_lists) >= 4  # Playground, KL (π and π_ref), Theory
    for names in model_lists:  # no reward model offered as a policy
        assert f"run:{PPO_RUN}" in names and f"run:{REWARD_RUN}" not in names and "example-reward" not in names


def raw_call(app, api_name: str, data: list) -> tuple[bool, str]:
    """One event through /gradio_api/queue/join, its JSON escaped as ASCII (``"\\ud800"``: what a script
    sends; ``gradio_client`` itself cannot encode a lone surrogate): (success, first output or error)."""
    fn = next(i for i, f in app.demo.fns.items() if f.api_name == api_name)
    sh = uuid.uuid4().hex[:11]
    body = json.dumps({"data": data, "fn_index": fn, "session_hash": sh, "event_data": None, "trigger_id": None}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{app.url}/gradio_api/queue/join", body, {"Content-Type": "application/json"}), timeout=30
    ).read()
    with urllib.request.urlopen(f"{app.url}/gradio_api/queue/data?session_hash={sh}", timeout=120) as r:
        for line in r:
            msg = json.loads(line[5:]) if line.startswith(b"data:") else {}
            if msg.get("msg") == "process_completed":
                out = msg.get("output") or {}
                return bool(msg.get("success")), str(out.get("error") if not msg.get("success") else out.get("data"))
    return False, "no answer"


def test_generate_with_a_lone_surrogate_gets_the_clear_line(app):
    api = app.client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["parameters"]
    args = {p["parameter_name"]: p.get("parameter_default") for p in api}
    args.update(prompt="The movie \ud800 was", model=app.tiny, max_new_tokens=2)
    ok, text = raw_call(app, "generate", list(args.values()))
    assert not ok and "the prompt holds a lone surrogate (U+D800 at position 11)" in text, text
    out = app.client.predict(prompt="The movie was", model=app.tiny, max_new_tokens=2, api_name="/generate")
    assert "Generated 2 tokens" in out[11]  # and the server keeps serving


def test_a_shipped_policy_loads_by_its_short_name_and_a_reward_model_is_refused(app):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        app.client.predict(prompt="The movie was", model="example-reward", max_new_tokens=2, api_name="/generate")
    assert "example-reward (shipped) is a reward model" in str(err.value) and str(REPO) not in str(err.value)


def test_uploads_are_cleaned_on_a_schedule(app):
    import httpx

    files = [("files", (f"up{i}.txt", os.urandom(1_000_000), "text/plain")) for i in range(10)]
    paths = httpx.post(f"{app.url}/gradio_api/upload", files=files, timeout=60).json()
    assert len(paths) == 10 and all(Path(p).exists() for p in paths)
    deadline = time.time() + 15
    while time.time() < deadline and any(Path(p).exists() for p in paths):
        time.sleep(0.5)
    assert not any(Path(p).exists() for p in paths), "uploads kept past their age"


def test_a_csv_export_leaves_no_temporary_folder(app):
    from rlhf_demo.classroom.quota import exports_dir

    before = {p.name for p in Path(tempfile.gettempdir()).iterdir()}
    out = app.client.predict([PPO_RUN], api_name="/runs_export_csv")
    got = out.get("value") if isinstance(out, dict) else out
    assert got and Path(got).read_text().startswith(("run", "step", "algo")) or Path(got).stat().st_size > 0
    new = {p.name for p in Path(tempfile.gettempdir()).iterdir()} - before
    assert not [n for n in new if n.startswith(("rlhf-runs-", "tmp"))], new
    assert list(exports_dir().glob("export-*/metrics-*.csv"))  # in the downloads folder: cleaned by age, counted
