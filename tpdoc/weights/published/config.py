"""A published ``config.json`` converted into tpdoc's ``ModelConfig``.

In: a published checkpoint folder (and optionally its already parsed ``config.json``): a
flat LLaMA config plus LLaVA's ``mm_*`` fields. Out: a ``PublishedConfig``: the equivalent
``ModelConfig`` (so geometry, ``tpdoc inspect``, tiling, prompting and sequence assembly
are shared with tpdoc's own format), where the vision tower was found, where the HD tile
cap came from (the caller, ``patch_num``, the checkpoint name, or the reference's default),
and which image tokens the tokenizer must add.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpdoc.documents.tiling import GRID_CANDIDATES
from tpdoc.errors import ConfigError, ModelFormatError, UsageError
from tpdoc.model.config import ModelConfig, VisionConfig
from tpdoc.model.packer import PackerConfig
from tpdoc.model.vision import PUBLISHED_LEVELS
from tpdoc.weights.hub import Report, repo_id_from_cache_path, stderr_report
from tpdoc.weights.published.format import ARCHITECTURE, format_error, is_published_config
from tpdoc.weights.published.tower import TowerSource, read_tower_config, resolve_tower

DEFAULT_PATCH_NUM = 9  # the reference's fallback when config.json has no patch_num
PROMPT = "vicuna_v1"
PROMPT_IM_START_END = "vicuna_v1_im_start_end"  # "<im_start><image><im_end>" in the prompt
ASPECT_MODES = ("pad", "slice")  # image_aspect_ratio values, which are tpdoc's tiling modes

# The LLaMA fields of a published config.json (everything else is LLaVA's or bookkeeping).
LLAMA_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
    "max_position_embeddings", "initializer_range", "rms_norm_eps", "use_cache",
    "pad_token_id", "bos_token_id", "eos_token_id", "pretraining_tp", "tie_word_embeddings",
    "rope_theta", "rope_scaling", "rope_parameters", "attention_bias", "attention_dropout",
    "mlp_bias",
)  # fmt: skip
REQUIRED_LLAMA = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads")  # fmt: skip


@dataclass(frozen=True)
class PublishedConfig:
    """A published checkpoint's configuration, converted, with where each choice came from."""

    folder: Path
    config: ModelConfig
    tower: TowerSource
    tiles_from: str  # why config.max_tiles is what it is
    im_start_end: bool
    im_patch_token: bool


def model_name(folder: Path) -> str:
    """The hub id of a cached snapshot, else the folder's own name."""
    folder = Path(folder)
    return repo_id_from_cache_path(folder) or folder.resolve().name


def patch_num_from_name(name: str) -> int | None:
    """``...-16patch-...`` -> 16 (the published checkpoint names say it; configs do not)."""
    match = re.search(r"(?<![0-9])(\d+)patch", name)
    return int(match.group(1)) if match else None


def _max_tiles(
    data: dict[str, Any], name: str, override: int | None, folder: Path
) -> tuple[int, str]:
    """HD tile cap and where it came from: the caller, ``patch_num``, the name, the default."""
    if override is not None:  # checked by read_published_config
        return override, "set by the caller (--max-tiles)"
    from_name = patch_num_from_name(name)
    if data.get("patch_num") is not None:
        value, source = data["patch_num"], "patch_num in config.json"
    elif from_name is not None:
        value, source = from_name, f"from the checkpoint name {name!r}"
    else:
        value, source = DEFAULT_PATCH_NUM, "the reference's default; config.json has no patch_num"
    if value not in GRID_CANDIDATES:
        raise ModelFormatError(
            f"{folder}: max tiles {value!r} ({source}) is not one of {sorted(GRID_CANDIDATES)}; "
            "pass --max-tiles"
        )
    return value, source


def _required(data: dict[str, Any], key: str, folder: Path, kind: type) -> Any:
    if key not in data:
        raise ModelFormatError(f"{folder}: config.json lacks {key!r}, which the reference requires")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelFormatError(
            f"{folder}: config.json {key!r} must be {kind.__name__}, got {value!r}"
        )
    return value


def read_published_config(
    folder: str | Path,
    data: dict[str, Any] | None = None,
    *,
    max_tiles: int | None = None,
    tower_weights: bool = False,
    report: Report | None = None,
) -> PublishedConfig:
    """Convert a published ``config.json`` into tpdoc's ``ModelConfig``.

    ``max_tiles`` overrides ``patch_num``; ``tower_weights`` resolves the tower with its
    weights (downloading if online), otherwise its config alone is needed.
    """
    from tpdoc.model.config import read_config_json

    report = report or stderr_report
    folder = Path(folder)
    if max_tiles is not None and max_tiles not in GRID_CANDIDATES:
        raise UsageError(
            f"max tiles (--max-tiles) must be one of {sorted(GRID_CANDIDATES)}, got {max_tiles!r}"
        )
    data = read_config_json(folder) if data is None else data
    if not is_published_config(data):
        raise format_error(folder, data)
    archs = data.get("architectures") or [ARCHITECTURE]
    if ARCHITECTURE not in archs:
        raise ModelFormatError(
            f"{folder}: architectures {archs} is not {ARCHITECTURE}; tpdoc runs the LLaMA-based "
            "published checkpoints"
        )
    name = model_name(folder)
    scale = _required(data, "scale_factor", folder, int)
    select_layer = _required(data, "mm_vision_select_layer", folder, int)
    aspect = data.get("image_aspect_ratio")
    if aspect not in ASPECT_MODES:
        raise ModelFormatError(
            f"{folder}: image_aspect_ratio {aspect!r} is not supported (published: 'pad' for "
            "single view, 'slice' for HD)"
        )
    kind = data.get("mm_projector_type") or "tokenpacker"
    if kind != "tokenpacker":
        report(f"{name}: mm_projector_type {kind!r} is ignored, as by the reference: TokenPacker")
    missing = [k for k in REQUIRED_LLAMA if k not in data]
    if missing:
        raise ModelFormatError(f"{folder}: config.json lacks the LLaMA fields {', '.join(missing)}")

    tower = resolve_tower(_required(data, "mm_vision_tower", folder, str), folder,
                          weights=tower_weights, report=report)  # fmt: skip
    vision, mean, std = read_tower_config(tower)
    width, depth = vision["hidden_size"], vision["num_hidden_layers"]
    if data.get("mm_hidden_size", width) != width:
        raise ModelFormatError(
            f"{folder}: mm_hidden_size {data['mm_hidden_size']} != the tower's hidden_size "
            f"{width} ({tower.spec})"
        )
    if depth + 1 <= max(PUBLISHED_LEVELS):
        raise ModelFormatError(
            f"{folder}: the tower {tower.spec} has {depth} layers; the published multi-level "
            f"features read hidden states {PUBLISHED_LEVELS} (24 layers, as CLIP-L)"
        )
    mode = aspect
    if mode == "slice":
        tiles, tiles_from = _max_tiles(data, name, max_tiles, folder)
        hint = "" if max_tiles is not None else "; --max-tiles overrides"
        report(f"{name}: HD slicing with at most {tiles} tiles ({tiles_from}{hint})")
    else:
        tiles, tiles_from = max_tiles or DEFAULT_PATCH_NUM, "single view: tiles unused"
    im_start_end = bool(data.get("mm_use_im_start_end", False))
    try:
        config = ModelConfig(
            name=name,
            vision=VisionConfig(
                type="clip",
                config=vision,
                select_layer=select_layer,
                levels=PUBLISHED_LEVELS,
                select_feature=data.get("mm_vision_select_feature", "patch"),
            ),
            projector=PackerConfig(
                kind="tokenpacker",
                vision_dim=width,  # published: kv_dim 1024 = CLIP-L's width
                num_levels=len(PUBLISHED_LEVELS),  # published: 4096 = 4 levels x 1024
                embed_dim=width,  # published: embed_dim 1024, 8 heads (E // 128)
                llm_dim=data["hidden_size"],
                grid=vision["image_size"] // vision["patch_size"],
                scale=scale,
            ),
            text={k: data[k] for k in LLAMA_FIELDS if k in data},
            mode=mode,
            max_tiles=tiles,
            image_mean=mean,
            image_std=std,
            prompt=PROMPT_IM_START_END if im_start_end else PROMPT,
            short_answer=True,
        )
    except ConfigError as exc:
        raise ModelFormatError(f"{folder}: {exc}") from exc
    return PublishedConfig(
        folder=folder,
        config=config,
        tower=tower,
        tiles_from=tiles_from,
        im_start_end=im_start_end,
        im_patch_token=bool(data.get("mm_use_im_patch_token", False)),
    )
