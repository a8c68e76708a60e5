"""PEFT LoRA adapter -> GGUF LoRA file that llama.cpp loads beside its GGUF base model.

Follows llama.cpp's convert_lora_to_gguf.py: metadata general.type=adapter,
adapter.type=lora, adapter.lora.alpha; one `<base tensor>.lora_a` [r, in] and `.lora_b`
[out, r] pair per adapted projection, named after the base model's GGUF tensors
(`blk.N.attn_q.weight`, ...). llama.cpp scales the product by alpha / r like PEFT.

llama.cpp stores the q and k projections of llama-architecture models with their rows
permuted (the rotary halves interleaved); transformers undoes that when it loads the GGUF.
The rows of W = B A are the rows of B, so B of q_proj / k_proj gets the same permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

# architectures whose GGUF q/k weights are row-permuted relative to Hugging Face's
PERMUTED_QK = {"llama"}


@dataclass(frozen=True)
class GgufBase:
    """What the adapter needs to know about the GGUF base model."""

    architecture: str
    tensor_names: frozenset[str]
    block_count: int
    head_count: int
    head_count_kv: int

    @classmethod
    def read(cls, path: Path) -> GgufBase:
        reader = gguf.GGUFReader(path)
        architecture = reader.fields["general.architecture"].contents()

        def number(key: str) -> int:
            return int(reader.fields[f"{architecture}.{key}"].contents())

        return cls(
            architecture=architecture,
            tensor_names=frozenset(tensor.name for tensor in reader.tensors),
            block_count=number("block_count"),
            head_count=number("attention.head_count"),
            head_count_kv=number("attention.head_count_kv"),
        )


def permute_rows(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k row order: per head, interleave the two rotary halves."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def lora_tensors(model: PeftModel, base: GgufBase) -> tuple[float, dict[str, torch.Tensor]]:
    """(alpha, {GGUF tensor name: float32 tensor}) of the active adapter."""
    adapter = model.active_adapter
    names = gguf.get_tensor_name_map(_arch_enum(base.architecture), base.block_count)
    alphas: set[float] = set()
    tensors: dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
            continue
        hf_name = module_name.removeprefix("base_model.model.")
        target = names.get_name(hf_name)
        if target is None or f"{target}.weight" not in base.tensor_names:
            raise ValueError(f"LoRA target {hf_name} has no tensor in the GGUF base model")
        rank = module.r[adapter]
        alphas.add(round(module.scaling[adapter] * rank, 6))
        lora_a = module.lora_A[adapter].weight.detach().float().cpu()
        lora_b = module.lora_B[adapter].weight.detach().float().cpu()
        if base.architecture in PERMUTED_QK and target.endswith((".attn_q", ".attn_k")):
            heads = base.head_count if target.endswith(".attn_q") else base.head_count_kv
            lora_b = permute_rows(lora_b, heads)
        tensors[f"{target}.weight.lora_a"] = lora_a
        tensors[f"{target}.weight.lora_b"] = lora_b
    if len(alphas) != 1:
        raise ValueError(f"GGUF LoRA files hold one alpha; this adapter has {sorted(alphas)}")
    return alphas.pop(), tensors


def write_gguf_lora(model: PeftModel, base: GgufBase, path: Path) -> None:
    """Write the active adapter of `model` as a GGUF LoRA file for `base`."""
    alpha, tensors = lora_tensors(model, base)
    writer = gguf.GGUFWriter(path, base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor.contiguous().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _arch_enum(architecture: str) -> gguf.MODEL_ARCH:
    for arch, name in gguf.MODEL_ARCH_NAMES.items():
        if name == architecture:
            return arch
    raise ValueError(f"the gguf package does not know the architecture {architecture!r}")
