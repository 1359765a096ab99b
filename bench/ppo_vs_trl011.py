"""Our PPO update side by side with the course's engine, ``trl==0.11.4``'s ``PPOTrainer.step``, in one run.

Both run the same workloads on the same machine in the same minutes, alternating (TRL, ours, ours,
TRL, …), each in a process of its own, so machine load hits both alike:

    b16     batch 16, 12-token responses, 2 PPO epochs × 1 mini-batch
    b8x24   batch 8, 24-token responses, 4 PPO epochs × 1 mini-batch (TRL's old experimental workload)

Same model (the default SmolLM2-135M, float32, from the safetensors cache that
``rlhf_demo.models.loading.default_model_dir`` converts the embedded GGUF to), same LoRA (r 8, alpha
16, on q/k/v/o of the top 8 of 30 layers), same VADER reward on query + response, same queries
(the built-in prompts cut to 2–8 tokens as our trainer cuts them), special tokens banned so every
response has the full length, lr 1e-3, β 0.03 fixed, no KL budget, 2 torch threads.

An update is everything from sampling to the optimiser step: TRL's ``generate`` (batched, one call
for the batch), the reward, then ``PPOTrainer.step`` (its forward passes of policy and reference,
the PPO epochs); ours: ``rlhf_demo.ppo.trainer.PPOTrainer.step``. The first update of each process
warms up and is not timed.

TRL 0.11.4 needs the transformers of its time, so it runs in a venv of its own, built once from the
package index into ``~/.cache/rlhf-demo/venv-trl011`` (``PINS`` below: the newest versions of its
time that import and run with this machine's torch 2.13; rebuild with ``--rebuild``). That
transformers (4.46) reads ``rope_theta`` where transformers 5 writes ``rope_parameters``: the worker
copies it over; its tokenizer class is read from ``tokenizer.json``. The first logits of a probe text
under each stack are printed side by side: they must agree.

``--bf16`` adds a third side: our trainer with ``dtype=bfloat16`` (frozen weights in bf16; LoRA, value
head and Adam in float32; π_old re-scored by a forward, ``ppo/rollout.py``), against the same float32
TRL. It pays on CPUs with AMX only (``bench/machine.py`` lists the CPU's flags).

Run under the shared lock:
    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/ppo_vs_trl011.py [--rounds 2] [--updates 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("RLHF_TRL011_VENV", Path.home() / ".cache" / "rlhf-demo" / "venv-trl011"))
PINS = [
    "trl==0.11.4",
    "transformers==4.46.3",
    "peft==0.13.2",
    "accelerate==1.0.1",
    "datasets==3.0.2",
    "pyarrow==17.0.0",
    "numpy==1.26.4",
    "torch==2.13.0",
    "rich",
    "vaderSentiment==3.3.2",
]
WORKLOADS = {
    "b16": {"batch_size": 16, "response_tokens": 12, "ppo_epochs": 2},
    "b8x24": {"batch_size": 8, "response_tokens": 24, "ppo_epochs": 4},
}
GOAL = 0.33
COMMON = {"lr": 1e-3, "beta": 0.03, "lora_r": 8, "lora_alpha": 16, "lora_layers": 8, "query_tokens": (2, 8), "seed": 0}
PROBE = "The movie was really"  # its last-position logits are compared between the two stacks


# ---------------------------------------------------------------------------- the TRL 0.11.4 venv
def ensure_venv(rebuild: bool = False) -> Path:
    """The venv's python, building the venv first if it is missing (or ``rebuild``)."""
    py, stamp = VENV / "bin" / "python", VENV / ".pins"
    if not rebuild and py.exists() and stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return py
    print(f"building {VENV} with {' '.join(PINS)} (once; a few minutes)…", flush=True)
    if rebuild and VENV.exists():
        import shutil

        shutil.rmtree(VENV)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PINS], check=True)
    subprocess.run([str(py), "-c", "from trl import PPOTrainer, AutoModelForCausalLMWithValueHead"], check=True)
    stamp.write_text("\n".join(PINS))
    return py


# ---------------------------------------------------------------------------- the shared inputs
def our_queries(workload: str, updates: int) -> list[list[list[int]]]:
    """The query token ids our trainer draws for ``updates`` updates of ``workload`` (its RNG calls, in order)."""
    sys.path.insert(0, str(ROOT))
    from rlhf_demo.data.prompts import builtin_prompts, load_prompts, truncate_prompt
    from rlhf_demo.models.loading import load_tokenizer

    tok, w = load_tokenizer("default"), WORKLOADS[workload]
    held = set(builtin_prompts("heldout"))
    prompts = [p for p in load_prompts("builtin") if p not in held]
    rng, out = random.Random(COMMON["seed"]), []
    for _ in range(updates):
        out.append(
            [
                truncate_prompt(tok, prompts[rng.randrange(len(prompts))], rng.randint(*COMMON["query_tokens"]))
                for _ in range(w["batch_size"])
            ]
        )
        rng.randint(w["response_tokens"], w["response_tokens"])
    return out


# ---------------------------------------------------------------------------- workers
def worker_ours(workload: str, updates: int, dtype: str = "float32") -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from rlhf_demo.ppo.config import preset
    from rlhf_demo.ppo.trainer import PPOTrainer

    torch.set_num_threads(2)
    w = WORKLOADS[workload]
    cfg = preset(
        "quick-cpu",
        steps=updates + 1,
        eval_final=False,
        kl_budget=0.0,
        num_mini_batches=1,
        batch_size=w["batch_size"],
        response_tokens=(w["response_tokens"],) * 2,
        ppo_epochs=w["ppo_epochs"],
        **{k: v for k, v in COMMON.items() if k != "seed"},
        seed=COMMON["seed"],
        dtype=dtype,
    )
    tr = PPOTrainer(cfg)
    probe = torch.tensor([tr.tok(PROBE)["input_ids"]])
    with torch.no_grad(), tr.policy.reference() as ref:
        logits = ref(probe).logits[0, -1]
    recs = []
    for rec in tr.train():
        recs.append(rec)
        if len(recs) == cfg.steps:
            break
    recs = recs[1:]
    parts = {
        "generate": ["time/generate"],
        "score": ["time/score"],
        "rest": ["time/old_policy", "time/reference", "time/forward", "time/backward", "time/optimizer"],
    }
    out = {"s": [r["time/update"] for r in recs], "probe": logits[:5].tolist(), "reward": [r["reward_mean"] for r in recs]}
    for name, keys in parts.items():
        out[name] = [sum(r.get(k, 0.0) for k in keys) for r in recs]
    return out


def worker_trl(workload: str, updates: int, queries: list) -> dict:
    """TRL 0.11.4 (run by the venv's python): the course's loop, ``generate`` → reward → ``step``."""
    import torch
    from peft import LoraConfig
    from transformers import AutoConfig, PreTrainedTokenizerFast
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    torch.set_num_threads(2)
    torch.manual_seed(COMMON["seed"])
    w, path = WORKLOADS[workload], os.environ["RLHF_MODEL_DIR"]
    conf = AutoConfig.from_pretrained(path)
    if getattr(conf, "rope_parameters", None):  # transformers 5 writes it; 4.46 reads rope_theta
        conf.rope_theta = conf.rope_parameters["rope_theta"]
    # transformers 5 names its own tokenizer class in tokenizer_config.json: read tokenizer.json directly
    tok_cfg = json.loads((Path(path) / "tokenizer_config.json").read_text())
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(Path(path) / "tokenizer.json"),
        **{k: tok_cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if k in tok_cfg},
    )
    n_layers = conf.num_hidden_layers
    lora = LoraConfig(
        r=COMMON["lora_r"],
        lora_alpha=COMMON["lora_alpha"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        layers_to_transform=list(range(n_layers - COMMON["lora_layers"], n_layers)),
        layers_pattern="layers",
    )
    model = AutoModelForCausalLMWithValueHead.from_pretrained(path, config=conf, peft_config=lora, torch_dtype=torch.float32)
    config = PPOConfig(
        model_name=path,
        learning_rate=COMMON["lr"],
        batch_size=w["batch_size"],
        mini_batch_size=w["batch_size"],
        ppo_epochs=w["ppo_epochs"],
        init_kl_coef=COMMON["beta"],
        adap_kl_ctrl=False,
        seed=COMMON["seed"],
    )
    trainer = PPOTrainer(config, model, ref_model=None, tokenizer=tok)
    probe = torch.tensor([tok(PROBE)["input_ids"]])
    with torch.no_grad(), trainer.optional_peft_ctx():
        logits = trainer.model.pretrained_model(probe).logits[0, -1]
    vader = SentimentIntensityAnalyzer()
    R = w["response_tokens"]
    gen_kwargs = dict(
        min_new_tokens=R,
        max_new_tokens=R,
        do_sample=True,
        top_k=0,
        top_p=1.0,
        pad_token_id=tok.pad_token_id,
        suppress_tokens=list(tok.all_special_ids),
    )
    out = {"s": [], "generate": [], "score": [], "rest": [], "reward": [], "probe": logits[:5].tolist()}
    for u, qs in enumerate(queries):
        q_t = [torch.tensor(q) for q in qs]
        t0 = time.perf_counter()
        r_t = trainer.generate(q_t, batch_size=len(q_t), return_prompt=False, **gen_kwargs)
        t1 = time.perf_counter()
        texts = [tok.decode(q) + tok.decode(r, skip_special_tokens=True) for q, r in zip(q_t, r_t)]
        scores = [torch.tensor(vader.polarity_scores(t)["compound"]) for t in texts]
        t2 = time.perf_counter()
        trainer.step(q_t, list(r_t), scores)
        t3 = time.perf_counter()
        if u == 0:
            continue  # warm-up
        for k, v in (
            ("s", t3 - t0),
            ("generate", t1 - t0),
            ("score", t2 - t1),
            ("rest", t3 - t2),
            ("reward", float(torch.stack(scores).mean())),
        ):
            out[k].append(v)
    return out


def run_worker(kind: str, workload: str, updates: int, trl_python: Path, model_dir: str) -> dict:
    """One process of ``kind``: ``trl``, ``ours`` (float32) or ``ours-bf16`` (our trainer with ``dtype=bfloat16``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(our_queries(workload, updates + 1), f)
    py = str(trl_python) if kind == "trl" else sys.executable
    env = {**os.environ, "RLHF_MODEL_DIR": model_dir, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(
        [py, __file__, "--worker", kind, "--workload", workload, "--updates", str(updates), "--queries", f.name],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    os.unlink(f.name)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{kind} {workload} failed:\n{p.stderr[-4000:]}")
    return json.loads(line[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="processes per side and workload (alternating)")
    ap.add_argument("--updates", type=int, default=3, help="timed updates per process (after one warm-up)")
    ap.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the TRL 0.11.4 venv")
    ap.add_argument("--bf16", action="store_true", help="also run our trainer with dtype=bfloat16 (pays on CPUs with AMX)")
    ap.add_argument("--worker", choices=["ours", "ours-bf16", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--queries", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        w = args.workload
        res = (
            worker_trl(w, args.updates, json.loads(Path(args.queries).read_text()))
            if args.worker == "trl"
            else worker_ours(w, args.updates, "bfloat16" if args.worker == "ours-bf16" else "float32")
        )
        print("RESULT " + json.dumps(res))
        return

    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from machine import describe

    from rlhf_demo.models.loading import default_model_dir

    trl_python, model_dir = ensure_venv(args.rebuild), str(default_model_dir())
    names = list(WORKLOADS) if args.workload == "both" else [args.workload]
    load0, t_start = os.getloadavg(), time.strftime("%H:%M")
    sides = ("trl", "ours", "ours-bf16") if args.bf16 else ("trl", "ours")
    res = {w: {kind: [] for kind in sides} for w in names}
    for w in names:
        for r in range(args.rounds):
            for kind in sides if r % 2 == 0 else sides[::-1]:
                res[w][kind].append(run_worker(kind, w, args.updates, trl_python, model_dir))
                print(f"  {w} round {r} {kind}: {statistics.mean(res[w][kind][-1]['s']):.2f} s/update", flush=True)
    load1 = os.getloadavg()
    print(f"\nmachine: {describe()}; 2 torch threads; {t_start}–{time.strftime('%H:%M')}, load average {load0[0]:.2f} → {load1[0]:.2f}")
    print(f"trl 0.11.4 venv: {VENV} ({', '.join(p for p in PINS if p.startswith(('trl', 'transformers', 'peft', 'torch')))})")
    print(f"{'workload':9} {'side':9} {'s/update':>9} {'generate':>9} {'score':>6} {'rest':>6}  reward   first logits")
    ratios = {}
    for w in names:
        means = {}
        for kind in sides:
            runs = res[w][kind]
            m = {k: statistics.mean(x for run in runs for x in run[k]) for k in ("s", "generate", "score", "rest", "reward")}
            means[kind] = m
            print(
                f"{w:9} {kind:9} {m['s']:9.2f} {m['generate']:9.2f} {m['score']:6.2f} {m['rest']:6.2f}  {m['reward']:+.3f}  "
                + " ".join(f"{x:.3f}" for x in runs[0]["probe"][:3])
            )
        ratios[w] = {kind: means[kind]["s"] / means["trl"]["s"] for kind in sides[1:]}
    print()
    for w, rs in ratios.items():
        for kind, r in rs.items():
            print(
                f"{w}: {kind} / trl 0.11.4 = {r:.2f}× the time ({1 / r:.1f}× faster); goal ≤ {GOAL}×: "
                f"{'met' if r <= GOAL else 'not met'}" + ("  (trl in float32)" if kind == "ours-bf16" else "")
            )


if __name__ == "__main__":
    main()
