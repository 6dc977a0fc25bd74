"""Tiny checkpoints written in the published TokenPacker (LLaVA-1.5) layout, and a fake hub.

Nothing here is a test: the builders write, from scratch and offline, what a published
checkpoint folder holds (flat LLaMA ``config.json`` with the ``mm_*`` fields, weights under
the published key names as safetensors or ``.bin`` shards, a LLaMA tokenizer) and what a
CLIP tower folder holds (openai's layout: a full CLIP config and ``pytorch_model.bin`` with
the text half too), small enough for CPU tests: LLaMA hidden 64 in 2 layers, a CLIP tower of
width 16 with 24 layers so the published levels (12, 16, 22, 23) apply unchanged.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tests.test_packer import random_state
from tpdoc.model.packer import PackerConfig

PROJECTOR = "model.mm_projector."
TOWER_IN_CHECKPOINT = "model.vision_tower.vision_tower."
TOWER = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "projection_dim": 8,
    "num_hidden_layers": 24,
    "num_attention_heads": 2,
    "num_channels": 3,
    "image_size": 56,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
TOWER_MEAN, TOWER_STD = [0.5, 0.45, 0.4], [0.25, 0.26, 0.27]
LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
}
SP_CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions.",
    "USER: ASSISTANT: Answer the question using a single word or phrase.",
    "What is the total? What is the invoice number? Who issued the document?",
    "Invoice No. INV-2024-0153 Date 12.03.2024 Total 1,234.56 EUR, receipt, price",
]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def projector_config(scale: int) -> PackerConfig:
    """The projector a published fixture holds: C = E = the tower's width, 4 levels."""
    width = TOWER["hidden_size"]
    grid = TOWER["image_size"] // TOWER["patch_size"]
    return PackerConfig(
        vision_dim=width, num_levels=4, embed_dim=width, llm_dim=LLAMA["hidden_size"],
        grid=grid, scale=scale,
    )  # fmt: skip


# ---------------------------------------------------------------- tokenizers


def write_sentencepiece_tokenizer(folder: Path) -> Path:
    """A LLaMA-style SentencePiece BPE model (byte fallback, BOS 1, EOS 2), trained here."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SP_CORPUS * 10), model_writer=model, vocab_size=400,
        model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
        normalization_rule_name="identity", character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    config = {
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
        "legacy": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": None, "model_max_length": 2048, "padding_side": "right",
    }  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder / "tokenizer.model"


def write_json_tokenizer(folder: Path) -> None:
    """A byte-level BPE ``tokenizer.json`` built with ``tokenizers`` (conftest's)."""
    from tests.conftest import make_tokenizer

    make_tokenizer().save_pretrained(str(folder))


def tokenizer_size(folder: Path) -> int:
    if (folder / "tokenizer.json").is_file():
        return len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).get_piece_size()


# ---------------------------------------------------------------- the CLIP tower


def clip_state(seed: int) -> dict[str, torch.Tensor]:
    """A random tiny CLIP vision tower under the names openai's files use (``vision_model.*``;
    transformers 5 drops that prefix in memory, so it is put back here)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    state = CLIPVisionModel(CLIPVisionConfig(**TOWER)).state_dict()
    return {"vision_model." + k.removeprefix("vision_model."): v for k, v in state.items()}


def tower_tensor(model, key: str) -> torch.Tensor:
    """A loaded tower's tensor by its file name ``vision_model.*``, whatever transformers
    calls it in memory."""
    own = model.vision.vision_tower.state_dict()
    return own[key] if key in own else own[key.removeprefix("vision_model.")]


def write_tower(folder: Path, *, seed: int = 0, weights: bool = True) -> dict[str, torch.Tensor]:
    """openai's layout: full CLIP config, preprocessor config, ``pytorch_model.bin`` holding
    the vision half, a bit of the text half and the old ``position_ids`` buffer."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": 8,
        "text_config": {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1},
        "vision_config": {**TOWER, "dropout": 0.0, "transformers_version": "4.21.0"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    pre = {"crop_size": 56, "image_mean": TOWER_MEAN, "image_std": TOWER_STD, "size": 56}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    state = clip_state(seed)
    if weights:
        grid = TOWER["image_size"] // TOWER["patch_size"]
        saved = {
            **state,
            "vision_model.embeddings.position_ids": torch.arange(grid * grid + 1)[None],
            "text_model.embeddings.token_embedding.weight": torch.randn(10, 8),
            "visual_projection.weight": torch.randn(8, TOWER["hidden_size"]),
            "logit_scale": torch.tensor(2.6592),
        }
        torch.save(saved, folder / "pytorch_model.bin")
    return state


# ---------------------------------------------------------------- the published checkpoint


def llama_state(vocab: int, seed: int) -> dict[str, torch.Tensor]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, tie_word_embeddings=False, **LLAMA)
    return LlamaForCausalLM(config).state_dict()


def published_config(
    *, tower: str, mode: str, scale: int, vocab: int, **overrides: Any
) -> dict[str, Any]:
    """A config.json as the reference training code writes it (transformers 4.31 era)."""
    config = {
        "_name_or_path": "./checkpoints/tokenpacker-tiny",
        "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava",
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "initializer_range": 0.02, "pretraining_tp": 1, "rope_scaling": None,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": "4.31.0", "use_cache": True, "vocab_size": vocab,
        **LLAMA,
        "freeze_mm_mlp_adapter": False, "image_aspect_ratio": mode,
        "image_grid_pinpoints": None, "mm_hidden_size": TOWER["hidden_size"],
        "mm_projector_type": "tokenpacker", "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False, "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2, "mm_vision_tower": tower, "scale_factor": scale,
        "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
        "tune_mm_mlp_adapter": False, "use_mm_proj": True,
    }  # fmt: skip
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not DROP}


DROP = object()  # an override value that removes the key


def write_published(
    folder: Path,
    *,
    tower: str | Path,
    mode: str = "pad",
    scale: int = 2,
    weights: str = "safetensors",  # "safetensors" | "safetensors-shards" | "bin-shards"
    tokenizer: str = "sentencepiece",  # "sentencepiece" | "json"
    carry_tower: dict[str, torch.Tensor] | None = None,
    mutate: Callable[[dict[str, torch.Tensor]], None] | None = None,
    seed: int = 0,
    **config_overrides: Any,
) -> dict[str, torch.Tensor]:
    """Write a published-format checkpoint; returns the state dict as written (float16)."""
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer == "json":
        write_json_tokenizer(folder)
    else:
        write_sentencepiece_tokenizer(folder)
    im_tokens = 2 * bool(config_overrides.get("mm_use_im_start_end")) + bool(
        config_overrides.get("mm_use_im_patch_token")
    )
    vocab = tokenizer_size(folder) + im_tokens
    config = published_config(
        tower=str(tower), mode=mode, scale=scale, vocab=vocab, **config_overrides
    )
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    projector = {
        PROJECTOR + k: v for k, v in random_state(projector_config(scale), seed=seed).items()
    }
    state = {**llama_state(vocab, seed), **projector}
    if carry_tower is not None:
        state |= {TOWER_IN_CHECKPOINT + k: v for k, v in carry_tower.items()}
    state = {k: v.to(torch.float16) for k, v in state.items()}  # published: fp16 weights
    if mutate is not None:
        mutate(state)
    save_weights(folder, state, weights)
    return state


def save_weights(folder: Path, state: dict[str, torch.Tensor], layout: str) -> None:
    """``state`` as ``model.safetensors``, or two safetensors or ``.bin`` shards and their
    index (as the hub's sharded checkpoints are)."""
    from safetensors.torch import save_file

    if layout == "safetensors":
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    keys = sorted(state)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    bin_ = layout == "bin-shards"
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        name = (
            f"pytorch_model-{i:05d}-of-00002.bin" if bin_ else f"model-{i:05d}-of-00002.safetensors"
        )
        part = {k: state[k].contiguous() for k in names}
        if bin_:
            torch.save(part, folder / name)
        else:
            save_file(part, str(folder / name), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(names, name)
    index = "pytorch_model.bin.index.json" if bin_ else "model.safetensors.index.json"
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / index).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )


# ---------------------------------------------------------------- a fake hub cache


def put_in_hub_cache(repo_id: str, source: Path, only: list[str] | None = None) -> Path:
    """Copy ``source`` into the Hugging Face cache layout (``models--org--name/snapshots/
    <rev>/`` plus ``refs/main``) under the cache the environment names now."""
    from tpdoc.weights.hub import hub_cache_dir

    root = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source).iterdir()):
        if only is None or path.name in only:
            shutil.copy2(path, snapshot / path.name)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)
    return snapshot
