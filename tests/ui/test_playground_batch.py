"""Generate requests of several sessions at once run as one batch (``decoding/batch.py``) and each
session still gets exactly what the same call gets alone: tokens, probability bins and the bars'
probabilities. No browser; the tiny model; four ``gradio_client`` sessions in four threads."""

from __future__ import annotations

import json
import threading

import pytest

KNOBS = dict(
    strategy="sample",
    temperature=0.8,
    top_k=40,
    top_p=0.95,
    min_p=0.0,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    num_beams=4,
    max_new_tokens=24,
    min_new_tokens=0,
    num_samples=1,
    word_bias="",
    chat_template=False,
)
REQUESTS = [("The movie was", 1), ("Hi", 2), ("Once upon a time, in a land far away, there lived", 3), ("I think that the", 4)]
ROUNDS = 5


def _bars(plot) -> list[list[float]]:
    """The y values (raw and processed probabilities) of the candidates figure, as sent to the browser."""
    fig = plot["plot"] if isinstance(plot, dict) else plot
    fig = json.loads(fig) if isinstance(fig, str) else fig
    return [list(trace["y"]) for trace in fig["data"]]


def _call(client, model, prompt, seed):
    out = client.predict(prompt=prompt, model=model, seed=seed, **KNOBS, api_name="/generate")
    return {"tokens": out[0], "bars": _bars(out[3]), "status": out[11]}


def _same(got, want):
    assert got["tokens"] == want["tokens"]
    for g, w in zip(got["bars"], want["bars"]):
        assert g == pytest.approx(w, abs=1e-5)


def test_four_sessions_at_once_each_get_what_they_get_alone(app_url, tiny_model_dir):
    from gradio_client import Client

    model = str(tiny_model_dir)
    clients = [Client(app_url, verbose=False) for _ in REQUESTS]
    alone = [_call(c, model, prompt, seed) for c, (prompt, seed) in zip(clients, REQUESTS)]
    assert len({json.dumps(a["tokens"]) for a in alone}) == len(REQUESTS)  # four different answers
    batched = 0
    for _ in range(ROUNDS):
        barrier, results, errors = threading.Barrier(len(REQUESTS)), [None] * len(REQUESTS), []

        def work(i, barrier=barrier, results=results, errors=errors):
            try:
                barrier.wait(timeout=60)
                results[i] = _call(clients[i], model, *REQUESTS[i])
            except BaseException as exc:  # re-raised below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(REQUESTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        if errors:
            raise errors[0]
        for got, want in zip(results, alone):
            _same(got, want)
        batched += sum("one batch with" in r["status"] for r in results)
    assert batched, f"in {ROUNDS} rounds of {len(REQUESTS)} concurrent requests none ran in a batch with another"
