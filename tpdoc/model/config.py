"""tpdoc's model configuration: one ``config.json`` describing the whole pipeline.

In: a ``config.json`` dict (``model_type: "tpdoc"``) or the dataclasses below. Out: a
validated, frozen ``ModelConfig`` whose parts agree with each other (tile size, patch
grid, feature widths, LLM width), and its ``Geometry``: what the tiler and the token
budget need, computable without loading any weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tpdoc.documents.tiling import CLIP_MEAN, CLIP_STD, TilingConfig
from tpdoc.errors import ConfigError, ModelFormatError
from tpdoc.model.packer import PackerConfig
from tpdoc.model.pointer import AnswerConfig

MODEL_TYPE = "tpdoc"
CONFIG_FILE = "config.json"
VISION_TYPES = ("clip", "convnet")


@dataclass(frozen=True)
class VisionConfig:
    """A vision tower: its kind, its own (transformers-style) config and what to read out.

    ``config`` must hold ``image_size``, ``patch_size``, ``hidden_size`` and
    ``num_hidden_layers``; the tile size and patch grid derive from it.
    """

    type: str = "clip"
    config: dict[str, Any] = field(default_factory=dict)
    select_layer: int = -2
    levels: tuple[int, ...] = (12, 16, 22, 23)
    select_feature: str = "patch"

    def __post_init__(self) -> None:
        if self.type not in VISION_TYPES:
            raise ConfigError(f"vision type must be one of {VISION_TYPES}, got {self.type!r}")
        missing = [k for k in ("image_size", "patch_size", "hidden_size") if k not in self.config]
        if missing:
            raise ConfigError(f"vision config lacks {', '.join(missing)}")
        if self.tile_size % self.config["patch_size"]:
            raise ConfigError(
                f"vision image_size {self.tile_size} is not a multiple of "
                f"patch_size {self.config['patch_size']}"
            )
        object.__setattr__(self, "levels", tuple(int(x) for x in self.levels))

    @property
    def tile_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def patch_grid(self) -> int:
        return self.tile_size // int(self.config["patch_size"])

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])


@dataclass(frozen=True)
class Geometry:
    """What planning and token counting need from a model, and nothing else."""

    tiling: TilingConfig
    patch_grid: int  # G
    scale: int  # s
    tokens_per_tile: int  # packed: (G/s)^2
    tokens_per_tile_uncompressed: int  # MLP projector: G^2
    context_limit: int | None = None

    @property
    def tile_size(self) -> int:
        return self.tiling.tile_size

    @property
    def max_tiles(self) -> int:
        return self.tiling.max_tiles

    def with_options(self, *, max_tiles: int | None = None, scale: int | None = None) -> Geometry:
        """The same geometry with a different tile cap or packer scale (validated)."""
        tiling = replace(self.tiling, max_tiles=max_tiles) if max_tiles else self.tiling
        s = scale or self.scale
        if self.patch_grid % s:
            raise ConfigError(f"scale {s} does not divide the patch grid {self.patch_grid}")
        return replace(self, tiling=tiling, scale=s, tokens_per_tile=(self.patch_grid // s) ** 2)


@dataclass(frozen=True)
class ModelConfig:
    """The whole model: tiling, vision tower, projector, language model, prompt."""

    name: str
    vision: VisionConfig
    projector: PackerConfig
    text: dict[str, Any]  # a transformers LlamaConfig as a dict
    mode: str = "slice"
    max_tiles: int = 9
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    prompt: str = "tpdoc"
    short_answer: bool = False
    # How answers come out: generated (published checkpoints) or pointed at on the page.
    answer: AnswerConfig = field(default_factory=AnswerConfig)

    def __post_init__(self) -> None:
        v, p = self.vision, self.projector
        checks = [
            (
                v.patch_grid == p.grid,
                f"vision patch grid {v.patch_grid} != projector grid {p.grid}",
            ),
            (
                v.hidden_size == p.vision_dim,
                f"vision hidden_size {v.hidden_size} != projector vision_dim {p.vision_dim}",
            ),
            (
                len(v.levels) == p.num_levels,
                f"vision levels {v.levels} ({len(v.levels)}) != projector num_levels "
                f"{p.num_levels}",
            ),
            (  # a pointer model's packed tokens go to its read-out, not the language model
                self.answer.kind == "pointer" or self.text.get("hidden_size") == p.llm_dim,
                f"text hidden_size {self.text.get('hidden_size')} != projector llm_dim {p.llm_dim}",
            ),
            (
                self.answer.kind == "generate" or p.kind == "tokenpacker",
                f"a pointer answer head reads TokenPacker tokens, not {p.kind!r} ones",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"model {self.name!r}: {message}")
        self.tiling  # noqa: B018 - validates mode, max_tiles, mean and std

    @property
    def tiling(self) -> TilingConfig:
        return TilingConfig(
            tile_size=self.vision.tile_size,
            max_tiles=self.max_tiles,
            mode=self.mode,
            image_mean=self.image_mean,
            image_std=self.image_std,
        )

    @property
    def geometry(self) -> Geometry:
        p = self.projector
        return Geometry(
            tiling=self.tiling,
            patch_grid=p.grid,
            scale=p.scale,
            tokens_per_tile=p.tokens_per_tile,
            tokens_per_tile_uncompressed=p.grid**2,
            context_limit=self.text.get("max_position_embeddings"),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.answer == AnswerConfig():
            del data["answer"]  # generating models' configs stay as they were
        return {"model_type": MODEL_TYPE, **data}

    @property
    def slot_grid(self):
        """How a pointer model's read-out cuts each view into slots (``tpdoc.model.readout``)."""
        from tpdoc.model.readout import SlotGrid

        v, p, a = self.vision, self.projector, self.answer
        cell = v.tile_size // v.patch_grid
        return SlotGrid(cell=cell, rows=a.rows, cols=a.cols, scale=p.scale, grid=p.grid)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        if data.pop("model_type", None) != MODEL_TYPE:
            raise ModelFormatError(f"not a tpdoc config (model_type must be {MODEL_TYPE!r})")
        try:
            vision = VisionConfig(**data.pop("vision"))
            projector = PackerConfig(**data.pop("projector"))
            answer = AnswerConfig(**data.pop("answer", {}))
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(data) - known)
            if unknown:
                raise ModelFormatError(f"unknown config fields: {', '.join(unknown)}")
            for key in ("image_mean", "image_std"):
                if key in data:
                    data[key] = tuple(data[key])
            return cls(vision=vision, projector=projector, answer=answer, **data)
        except (KeyError, TypeError) as exc:
            raise ModelFormatError(f"malformed tpdoc config: {exc}") from exc

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def read_config_json(folder: Path) -> dict[str, Any]:
    """The JSON object in ``folder/config.json`` (either format), or a ``ModelFormatError``."""
    path = folder / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: unreadable model config: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: model config must be a JSON object")
    return data
