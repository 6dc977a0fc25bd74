"""Which format a ``config.json`` is in: tpdoc's own, the published LLaVA-1.5 layout, or neither.

In: a parsed ``config.json`` (or the folder holding it). Out: ``"tpdoc"``, ``"llava"`` (the
published flat layout), ``"transformers-llava"`` or ``"unknown"``; for a config tpdoc cannot
read, a one-line ``ModelFormatError`` saying why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tpdoc.errors import ModelFormatError

MODEL_TYPES = ("llava", "llava_llama")  # the original LLaVA code's names for its flat config
ARCHITECTURE = "LlavaLlamaForCausalLM"


def config_format(data: dict[str, Any]) -> str:
    """``"tpdoc"``, ``"llava"`` (the published flat layout), ``"transformers-llava"``
    (transformers' own LLaVA, nested ``text_config``/``vision_config``) or ``"unknown"``."""
    kind = data.get("model_type")
    if kind == "tpdoc":
        return "tpdoc"
    if kind in MODEL_TYPES:
        nested = "text_config" in data or "vision_config" in data
        if not nested and "mm_vision_tower" in data:
            return "llava"
        return "transformers-llava"
    return "unknown"


def is_published_config(data: dict[str, Any]) -> bool:
    return config_format(data) == "llava"


def is_published_folder(folder: Path) -> bool:
    from tpdoc.model.config import read_config_json

    return is_published_config(read_config_json(Path(folder)))


def format_error(folder: Path, data: dict[str, Any]) -> ModelFormatError:
    """Why a config.json is neither tpdoc's nor the published format, in one line."""
    kind = data.get("model_type")
    if config_format(data) == "transformers-llava":
        return ModelFormatError(
            f"{folder}: model_type {kind!r} with text_config/vision_config is transformers' own "
            "LLaVA layout, not the published TokenPacker format (a flat LLaMA config with "
            "mm_vision_tower, scale_factor, image_aspect_ratio); tpdoc reads the latter"
        )
    return ModelFormatError(
        f"{folder}: model_type {kind!r} is not a format tpdoc reads (expected 'tpdoc', or "
        f"{MODEL_TYPES[0]!r} with the published {ARCHITECTURE} fields)"
    )
