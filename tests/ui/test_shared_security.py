"""Shared mode (RLHF_DEMO_SHARED=1) over HTTP, as an outsider would try it: server paths in every model
and data field, ``/gradio_api/file=`` probes, oversized / NaN / wrong-typed inputs, another session's
run. The app is served in-process on 127.0.0.1 with the tiny model allowlisted (RLHF_DEMO_MODELS), so
nothing loads the real model. Private endpoints (no api_name) are called the way an attacker would:
``/gradio_api/queue/join`` with their fn_index. Every input tried and its answer is written to
``$TMPDIR/rlhf-shared-security.txt`` (and printed with ``-s``)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlhf_demo.classroom import allowlist, limits

REPO = Path(__file__).resolve().parents[2]
LOG: list[tuple[str, str, str]] = []
NAN, INF = float("nan"), float("inf")
GENERIC = "refused with Gradio's generic error"


class Req:
    """What a handler reads of a gr.Request here: the session."""

    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def _run(root: Path, name: str, model_dir: Path) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "model": "default"}))
    shutil.copytree(model_dir, run / "policy")
    return run


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory, close_demo):
    """The whole app in shared mode, with one run of another session and one of the client's own."""
    from gradio_client import Client

    from rlhf_demo.ui.app import build_demo
    from rlhf_demo.ui.context import AppContext

    mp = pytest.MonkeyPatch()
    mp.setenv(limits.SHARED_ENV, "1")
    mp.setenv(limits.MODELS_ENV, str(tiny_model_dir))
    for k in (limits.MAX_TRAIN_S_ENV, limits.MAX_REQUEST_GB_ENV, limits.FULL_FINETUNE_ENV):
        mp.delenv(k, raising=False)
    mp.chdir(REPO)  # relative probes (rlhf_demo/assets, ../..) mean the source tree
    root = tmp_path_factory.mktemp("shared") / "runs"
    other = _run(root, "ppo-20260101-000000-aaaaaa", tiny_model_dir)
    mine = _run(root, "ppo-20260101-000001-bbbbbb", tiny_model_dir)
    ctx = AppContext(runs_dir=root)
    ctx.register_run(Req("someone-else"), other)
    demo = build_demo(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url.rstrip("/")
        client = Client(url, verbose=False)
        ctx.register_run(Req(client.session_hash), mine)
        fn = {f.api_name: i for i, f in demo.fns.items()}
        yield SimpleNamespace(url=url, demo=demo, ctx=ctx, client=client, other=other, mine=mine, tiny=str(tiny_model_dir), fn=fn)
    finally:
        close_demo(demo)
        mp.undo()
        report = Path(tempfile.gettempdir()) / "rlhf-shared-security.txt"
        report.write_text("\n".join(f"{e}\t{i}\t{o}" for e, i, o in LOG) + "\n")
        print("\n".join(f"{e:24} {i[:70]:70} → {o[:160]}" for e, i, o in LOG))


def call(app, endpoint: str, *args, **kw) -> str:
    """A public endpoint through gradio_client: its first output, or the AppError's message."""
    from gradio_client.exceptions import AppError

    try:
        out = app.client.predict(*args, api_name=f"/{endpoint}", **kw)
        text = out[0] if isinstance(out, (list, tuple)) else out
        text = text if isinstance(text, str) else repr(text)[:200]
    except AppError as exc:
        text = f"AppError: {exc}"
    LOG.append((endpoint, repr(args or kw)[:200], text))
    return text


def raw(app, endpoint: str, data: list, session: str | None = None) -> str:
    """Any endpoint by fn_index through /gradio_api/queue/join (JSON may carry NaN and Infinity)."""
    sh = session or uuid.uuid4().hex[:11]
    body = json.dumps({"data": data, "fn_index": app.fn[endpoint], "session_hash": sh, "event_data": None, "trigger_id": None}).encode()
    req = urllib.request.Request(f"{app.url}/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    text = "no answer"
    try:
        urllib.request.urlopen(req, timeout=30).read()
        with urllib.request.urlopen(f"{app.url}/gradio_api/queue/data?session_hash={sh}", timeout=60) as r:
            for line in r:
                line = line.decode().strip()
                msg = json.loads(line[5:]) if line.startswith("data:") else {}
                if msg.get("msg") == "process_completed":
                    out = msg.get("output") or {}
                    text = (
                        repr(out.get("data", [None])[0])
                        if msg.get("success")
                        else f"AppError: {out.get('error') or 'Error (generic: no message)'}"
                    )
                    break
    except urllib.error.HTTPError as exc:
        text = f"HTTP {exc.code}"
    LOG.append((endpoint + " (raw)", repr(data)[:200], text))
    return text


def serving(app) -> None:
    """The server still answers a good request on every model endpoint."""
    t = app.tiny
    assert "Generated 2 tokens" in app.client.predict(prompt="The movie was", model=t, max_new_tokens=2, api_name="/generate")[11]
    assert app.client.predict(t, t, 0.7, "The movie was", "type it in", " great", 4, 0, "kl_exact", api_name="/kl_tokens")[0].startswith(
        "**Done"
    )
    assert app.client.predict(t, t, 0.7, "The movie was", 2, 2, 0, api_name="/kl_estimator_lab")[0].startswith("**Done")
    assert app.client.predict(t, "length", "The movie was", 3, 2, 0, 0.5, api_name="/theory_candidates")[0].startswith("**Done")


# ----------------------------------------------------------------------------- model fields
def _server_paths(app) -> list[str]:
    from rlhf_demo.models.loading import cache_dir

    return [
        "/etc",
        "../..",
        "../../../../etc/passwd",
        str(app.other / "policy"),
        str(app.other),
        os.path.relpath(app.other / "policy"),
        str(cache_dir()),
        str(cache_dir() / "SmolLM2-135M-Instruct"),
        "~/.cache/rlhf_demo",
        "~/.cache/rlhf_demo/SmolLM2-135M-Instruct",
        "/no/such/dir",
        "no/such/../dir",
        str(REPO / "rlhf_demo"),
        "someone/some-hub-model",
    ]


def test_model_fields_refuse_server_paths_with_one_line(app):
    lim = limits.current()
    for endpoint, make, what in [
        ("generate", lambda n: dict(prompt="The movie was", model=n), "model"),
        ("kl_tokens", lambda n: dict(policy=n, reference=app.tiny, response_mode="type it in"), "policy"),
        ("kl_tokens", lambda n: dict(policy=app.tiny, reference=n, response_mode="type it in"), "reference"),
        ("kl_estimator_lab", lambda n: dict(policy=n, reference=app.tiny), "policy"),
        ("theory_candidates", lambda n: dict(reference_model=n, reward="length"), "reference"),
    ]:
        answers = {call(app, endpoint, **make(n)) for n in _server_paths(app)}
        assert len(answers) == 1, (endpoint, answers)  # existing and missing paths read the same
        assert allowlist.model_refusal(what, lim) in answers.pop()
    # what is allowed still loads: the session's own run, the allowlisted id
    own = app.client.predict(prompt="Hi", model=str(app.mine / "policy"), max_new_tokens=2, api_name="/generate")[11]
    LOG.append(("generate", "model=<this session's run>/policy", own))
    assert "Generated 2 tokens" in own
    serving(app)


def test_training_forms_refuse_server_paths(app):
    """The training panels' Start and Check (private endpoints, reached by fn_index): the model field,
    the DPO Hub id, and uploads that name a server file (Gradio refuses those before any handler)."""

    def form(endpoint, **change):
        values = {c.elem_id: c.value for c in app.demo.fns[app.fn[endpoint]].inputs}
        values.update({"ppo-seconds": 5, "dpo-max-seconds": 5, "ppo-steps": 1, "dpo-steps": 1, **change})
        return [values[c.elem_id] for c in app.demo.fns[app.fn[endpoint]].inputs]

    refused = allowlist.model_refusal("model")
    for name in _server_paths(app)[:6]:
        assert refused in raw(app, "start_run", form("start_run", **{"ppo-model": name}))
        assert refused in raw(app, "start_run_1", form("start_run_1", **{"dpo-model": name}))
    etc = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "passwd.txt"}
    cfg = {"path": str(app.other / "config.json"), "meta": {"_type": "gradio.FileData"}, "orig_name": "p.jsonl"}
    for f in (etc, cfg):
        assert raw(app, "start_run", form("start_run", **{"ppo-prompts-file": f})).startswith("AppError")
        assert raw(app, "on_check", ["Upload (JSONL / CSV)", f, "", "Mine"]).startswith("AppError")
    data_line = allowlist.data_refusal("preferences", feedback=True)
    for hub in ("/etc", "../../etc", "~/.cache/rlhf_demo", str(app.other), "./runs", "json", "a/b/c"):
        assert data_line in raw(app, "on_check", ["Hub dataset id", None, hub, "Mine"])
        assert data_line in raw(app, "start_run_1", form("start_run_1", **{"dpo-source": "Hub dataset id", "dpo-hub": hub}))
    # OWNER/NAME ids go to the Hub only (offline here): a local folder of that name reads like a missing one
    assert (REPO / "rlhf_demo" / "assets" / "preferences.jsonl").exists()
    a, b = (raw(app, "on_check", ["Hub dataset id", None, h, "Mine"]) for h in ("rlhf_demo/assets", "no_such/folder"))
    assert a.replace("rlhf_demo/assets", "X") == b.replace("no_such/folder", "X") and "could not load Hub dataset" in a


def test_widgets_show_the_limits(app):
    cfg = json.loads(urllib.request.urlopen(f"{app.url}/config", timeout=30).read())
    props = {c["props"].get("elem_id"): c["props"] for c in cfg["components"] if c.get("props", {}).get("elem_id")}
    assert props["dpo-max-seconds"]["maximum"] == 300 and props["dpo-max-seconds"]["value"] <= 300
    assert props["ppo-full-finetune"]["interactive"] is False and "LoRA only" in props["ppo-full-finetune"]["info"]
    assert "your own runs" in props["ppo-model"]["info"]


# ----------------------------------------------------------------------------- files
def _get(app, path: str) -> tuple[int, bytes]:
    host = urllib.parse.urlsplit(app.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    conn.request("GET", path)  # sent as written: no client-side normalisation of '..'
    r = conn.getresponse()
    body = r.read()
    conn.close()
    LOG.append(("GET", path[:200], f"HTTP {r.status}, {len(body)} bytes"))
    return r.status, body


def test_file_route_serves_nothing_of_the_server(app):
    from rlhf_demo.models.loading import cache_dir

    secrets = {
        "/etc/passwd": b"root:",
        str(app.other / "config.json"): b'"algo"',
        str(app.other / "policy" / "config.json"): b"vocab_size",
        str(app.mine / "policy" / "config.json"): b"vocab_size",
        str(REPO / "rlhf_demo" / "limits.py"): b"LimitError",
        "rlhf_demo/classroom/limits.py": b"LimitError",
        "rlhf_demo/assets/preferences.jsonl": b"chosen",
    }
    cached = cache_dir() / "SmolLM2-135M-Instruct" / "config.json"
    secrets[str(cached)] = b"vocab_size"
    tmp = Path(tempfile.gettempdir())
    variants = lambda p: [p, urllib.parse.quote(p), p.replace("/", "%2F")]  # noqa: E731
    probes = [(f"{prefix}{v}", needle) for p, needle in secrets.items() for v in variants(p) for prefix in ("/gradio_api/file=", "/file=")]
    probes += [
        (f"/gradio_api/file={tmp}/gradio/../../etc/passwd", b"root:"),
        (f"/gradio_api/file={tmp}/gradio/%2e%2e/%2e%2e/etc/passwd", b"root:"),
        ("/gradio_api/file=../../../../../../etc/passwd", b"root:"),
        ("/gradio_api/file=/ETC/passwd", b"root:"),
        ("/gradio_api/file=//etc/passwd", b"root:"),
        ("/gradio_api/static/../../../etc/passwd", b"root:"),
        ("/static/%2e%2e/%2e%2e/etc/passwd", b"root:"),
    ]
    for path, needle in probes:
        status, body = _get(app, path)
        assert not (status == 200 and needle in body), path


# ----------------------------------------------------------------------------- bad values
def test_oversized_nan_and_wrong_typed_inputs_answer_clearly(app):
    t = app.tiny
    kl = [t, t, 1.0, "The movie was", "type it in", " great", 4, 0, "kl_exact"]
    lab = [t, t, 1.0, "The movie was", 4, 4, 0]
    th = [t, "length", "The movie was", 3, 2, 0, 0.5]
    toy = ["great, good, bad", "1, 0, -1", "", 0.5, 8, True, 0.0, 0]
    long_prompt = "great " * 300  # under every character cap, over the 256-token one

    def sub(args, i, v):
        return [*args[:i], v, *args[i + 1 :]]

    cases = [  # (answer, what it must say)
        (call(app, "generate", prompt="x" * 30_000, model=t), "at most 20000"),
        (call(app, "generate", prompt="", model=t), "prompt is empty"),
        (call(app, "generate", prompt="Hi", model=t, max_new_tokens=10**6), "greater than maximum"),
        (call(app, "generate", prompt="Hi", model=t, seed=None), "seed is empty"),
        (call(app, "generate", prompt="Hi", model=["default"]), "shared server offers only"),
        (call(app, "generate", prompt="Hi", model=123), "shared server offers only"),
        (raw(app, "generate", ["Hi", t, "sample", NAN, 40, 0.95, 0.0, 1.0, 0, 4, 2, 0, 1, 0, "", False, "vader-positive"]), "finite"),
        # Playground sliders are not wrapped in config_form.strict yet: Gradio's generic error (report)
        (raw(app, "generate", ["Hi", t, "sample", "hot", 40, 0.95, 0.0, 1.0, 0, 4, 2, 0, 1, 0, "", False, "vader-positive"]), GENERIC),
        (call(app, "kl_tokens", *sub(kl, 3, "x" * 2001)), "limit is 2000"),
        (call(app, "kl_tokens", *sub(kl, 3, long_prompt)), "at most 256"),
        (call(app, "kl_tokens", *sub(kl, 5, " word" * 200)), "limit is 64"),
        (call(app, "kl_tokens", *sub(sub(kl, 4, "generate with the policy"), 6, "ten")), "is not a valid value"),
        (raw(app, "kl_tokens", sub(kl, 2, NAN)), "positive number"),
        (raw(app, "kl_tokens", sub(kl, 2, INF)), "greater than maximum"),
        (raw(app, "kl_tokens", sub(kl, 7, INF)), "is not a valid value"),
        (call(app, "kl_tokens", *sub(kl, 4, 5)), "not in the list of choices"),
        (call(app, "kl_estimator_lab", *sub(lab, 4, 10**6)), "greater than maximum"),
        (call(app, "kl_estimator_lab", *sub(lab, 5, "many")), "is not a valid value"),
        (call(app, "kl_estimator_lab", *sub(lab, 3, long_prompt)), "at most 256"),
        (raw(app, "kl_estimator_lab", sub(lab, 4, NAN)), "whole number"),
        (
            raw(app, "kl_estimator_lab", sub(lab, 6, -INF)),
            "is not a valid value|less than minimum value",
        ),  # the knob's range, checked by Gradio
        (call(app, "theory_candidates", *sub(th, 2, "x" * 5000)), "limit is 2000"),
        (call(app, "theory_candidates", *sub(th, 2, long_prompt)), "at most 256"),
        (call(app, "theory_candidates", *sub(th, 3, "many")), "is not a valid value"),
        (call(app, "theory_candidates", *sub(th, 4, 10**6)), "greater than maximum"),
        (call(app, "theory_candidates", *sub(th, 1, "hf:/etc:POSITIVE")), "reward: this shared server"),
        (call(app, "theory_candidates", *sub(th, 1, "hf:../../runs/x/policy:POSITIVE")), "reward: this shared server"),
        (raw(app, "theory_candidates", sub(th, 6, NAN)), "positive number"),
        (call(app, "toy_step", *sub(toy, 0, "x," * 100_000), None), "at most 2000 characters"),
        (call(app, "toy_step", *sub(toy, 0, 123), None), "words"),
        (raw(app, "toy_step", sub(toy, 3, NAN) + [None]), "learning rate"),
        (raw(app, "toy_step", sub(toy, 4, INF) + [None]), "greater than maximum"),
        (raw(app, "toy_step", sub(toy, 6, INF) + [None]), "and finite"),
        (call(app, "toy_run", *toy, 10**9, None), "greater than maximum"),
        (raw(app, "toy_run", toy + [NAN, None]), "steps per run must be a whole number"),
        (call(app, "toy_reset", *sub(toy, 1, "1, nan, 2")), "finite"),
    ]
    assert call(app, "theory_candidates", *th).startswith("**Done")  # the session has candidates to move
    cases += [
        (call(app, "theory_beta", "x"), "is not a valid value"),
        (raw(app, "theory_beta", [None, NAN], session=app.client.session_hash), "positive number"),
    ]
    for answer, needle in cases:
        assert answer.startswith(("AppError", "**Error", "'**Error", "⚠️")), answer
        if needle is GENERIC:
            continue
        assert "generic" not in answer, answer
        for alt in filter(None, needle.split("|")):
            if alt in answer:
                break
        else:
            assert not needle, (needle, answer)
    serving(app)


# ----------------------------------------------------------------------------- another session's runs
def test_another_sessions_run_cannot_be_downloaded(app):
    from rlhf_demo.runs.compare import run_label

    choices = call(app, "runs_refresh", None)
    listed = app.client.predict(None, api_name="/runs_refresh")[2]["choices"]
    labels = [c[0] if isinstance(c, (list, tuple)) else c for c in listed]
    assert run_label(app.mine) in labels and run_label(app.other) not in labels, choices
    assert call(app, "runs_download_policy", run=run_label(app.other)).startswith("AppError")
    own = app.client.predict(run=run_label(app.mine), api_name="/runs_download_policy")
    LOG.append(("runs_download_policy", run_label(app.mine), repr(own)[:160]))
    assert str(own.get("value") if isinstance(own, dict) else own).endswith(".zip")
    # the handler's own check, behind Gradio's choices check: a session that did not train the run
    handler = app.demo.fns[app.fn["runs_download_policy"]].fn
    from gradio.exceptions import Error

    with pytest.raises(Error, match="that you may see"):
        handler(run_label(app.mine), Req("a-third-session"))
    with pytest.raises(Error, match="that you may see"):
        handler(run_label(app.other), Req(app.client.session_hash))
    assert handler(run_label(app.other), Req("someone-else"))["value"].endswith(".zip")


def test_run_dir_remembers_the_session_without_showing_its_hash(app):
    from rlhf_demo.ui.training_run import run_dir

    req = Req("secret-session-hash")
    out = run_dir(app.ctx, "ppo", req)
    out.mkdir()
    (out / "config.json").write_text("{}")  # as the trainer writes it when the run starts
    assert app.ctx.own_runs(req) == (str(out),) and "secret" not in out.name
    assert allowlist.check_model(str(out / "policy"), limits=app.ctx.session_limits(req)) == str(out / "policy")
    with pytest.raises(limits.LimitError):
        allowlist.check_model(str(out / "policy"), limits=app.ctx.session_limits(Req("another")))
    names = [n for _, n in app.ctx.model_choices(Req(app.client.session_hash))]
    assert f"run:{app.mine.name}" in names and f"run:{app.other.name}" not in names and app.tiny in names  # short names
