"""A tiny model that ships a LoRA adapter inside its folder, as Phi-4-multimodal ships its
``vision-lora``: the random-weight tiny Qwen2.5-VL plus a PEFT adapter in ``vision-lora/``.

The adapter is a real PEFT LoRA (``adapter_config.json`` and ``adapter_model.safetensors`` with
PEFT's tensor names) on the text model's ``q_proj`` and ``v_proj`` of every layer, with random
A and B matrices large enough to change what the model writes. vLLM loads it with
``enable_lora`` (offline: a ``LoRARequest`` per request; ``vlmcap serve``: ``--lora-modules``),
so the LoRA path of a plugin runs in the real engine on a CPU.

    python -m vlmcap.tiny.lora [OUT_DIR]   # no OUT_DIR: build into the vlmcap cache
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from vlmcap import envs
from vlmcap.tiny import model as qwen25

#: Folder of the adapter inside the model folder (Phi-4-multimodal's name for its vision one).
ADAPTER_FOLDER = "vision-lora"
#: The projections the adapter changes, in each text layer.
TARGET_MODULES = ("q_proj", "v_proj")
#: What PEFT puts before a module's name in an adapter of a causal language model.
PEFT_PREFIX = "base_model.model.model.layers"
BUILD_VERSION = "lora-v1"


@dataclass(frozen=True)
class TinyLoRASpec:
    """The adapter's rank, scale and seed (the base model is ``TinySpec()``'s)."""

    rank: int = 8
    alpha: int = 16
    #: Standard deviation of the random A and B entries: big enough to change greedy tokens.
    init_std: float = 0.5
    seed: int = 1

    def digest(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True) + qwen25.TinySpec().digest()
        return hashlib.sha256((payload + BUILD_VERSION).encode()).hexdigest()[:12]


def write_adapter(out_dir: Path, base: qwen25.TinySpec, spec: TinyLoRASpec) -> Path:
    """A PEFT LoRA adapter for a tiny Qwen2.5-VL of ``base``'s sizes, written into ``out_dir``."""
    import torch
    from safetensors.torch import save_file

    head_dim = base.text_hidden // base.text_heads
    out_features = {"q_proj": base.text_hidden, "v_proj": base.text_kv_heads * head_dim}
    generator = torch.Generator().manual_seed(spec.seed)
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(base.text_layers):
        for module in TARGET_MODULES:
            name = f"{PEFT_PREFIX}.{layer}.self_attn.{module}"
            shape_a, shape_b = (spec.rank, base.text_hidden), (out_features[module], spec.rank)
            a = torch.randn(shape_a, generator=generator) * spec.init_std
            b = torch.randn(shape_b, generator=generator) * spec.init_std
            tensors[f"{name}.lora_A.weight"] = a.contiguous()
            tensors[f"{name}.lora_B.weight"] = b.contiguous()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": 0.0,
        "target_modules": list(TARGET_MODULES),
        "bias": "none",
        "fan_in_fan_out": False,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
        "base_model_name_or_path": None,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def build_tiny_lora_model(
    out_dir: Path, spec: TinyLoRASpec | None = None, cache_dir: Path | None = None
) -> Path:
    """The random tiny Qwen2.5-VL folder (from the cache) with the adapter in
    ``ADAPTER_FOLDER``."""
    spec = spec or TinyLoRASpec()
    base = qwen25.TinySpec()
    source = qwen25.ensure_tiny_model(cache_dir, base)
    shutil.copytree(source, out_dir, dirs_exist_ok=True)
    (out_dir / qwen25.MARKER_FILE).unlink()  # written again last, once the adapter is in
    write_adapter(out_dir / ADAPTER_FOLDER, base, spec)
    marker = {"spec": asdict(base), "lora": asdict(spec)}
    (out_dir / qwen25.MARKER_FILE).write_text(json.dumps(marker, indent=2))
    return out_dir


def tiny_lora_dir(cache_dir: Path | None = None, spec: TinyLoRASpec | None = None) -> Path:
    spec = spec or TinyLoRASpec()
    return (cache_dir or envs.cache_dir()) / "models" / f"tiny-lora-qwen2.5-vl-{spec.digest()}"


def ensure_tiny_lora_model(cache_dir: Path | None = None, spec: TinyLoRASpec | None = None) -> Path:
    """The tiny model with its adapter in the cache, built on first use (``ensure_built``)."""
    spec = spec or TinyLoRASpec()
    final = tiny_lora_dir(cache_dir, spec)
    return qwen25.ensure_built(
        final,
        lambda folder: build_tiny_lora_model(folder, spec, cache_dir),
        "tiny Qwen2.5-VL + LoRA",
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(build_tiny_lora_model(target) if target else ensure_tiny_lora_model())
