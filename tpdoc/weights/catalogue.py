"""The published checkpoints tpdoc knows, and the catalogue ``tpdoc models`` shows.

In: nothing but the local caches. Out: ``KNOWN_CHECKPOINTS`` (the TokenPacker model zoo's
hub ids and figures), one ``CatalogueEntry`` per embedded model and known checkpoint with
its local status, and the status of the vision tower the published checkpoints share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tpdoc.model.packer import PackerConfig
from tpdoc.weights.files import find_weight_files
from tpdoc.weights.hub import cache_status
from tpdoc.weights.published.tower import CLIP_L_336, KNOWN_TOWER_CONFIGS


@dataclass(frozen=True)
class KnownCheckpoint:
    """A published checkpoint with the TokenPacker model zoo's figures."""

    repo_id: str
    llm: str
    scale: int
    patch_num: int | None  # None: single view ('pad')
    max_resolution: int  # px per side, from the model zoo
    avg_tokens: int  # visual tokens per image, the zoo's average over its data ("~")

    @property
    def tokens_per_tile(self) -> int:
        tower = KNOWN_TOWER_CONFIGS[CLIP_L_336]
        grid = tower["image_size"] // tower["patch_size"]
        return PackerConfig(grid=grid, scale=self.scale).tokens_per_tile


# The TokenPacker model zoo (github.com/CircleRadon/TokenPacker, README): hub id, LLM,
# scale, max patches, max resolution, average visual tokens per image.
_ZOO = "sunshine-lwt/TokenPacker"
KNOWN_CHECKPOINTS = (
    KnownCheckpoint(f"{_ZOO}-7b-144token", "Vicuna-7B", 2, None, 336, 144),
    KnownCheckpoint(f"{_ZOO}-13b-144token", "Vicuna-13B", 2, None, 336, 144),
    KnownCheckpoint(f"{_ZOO}-HD-7b-9patch-144token", "Vicuna-7B", 2, 9, 1088, 954),
    KnownCheckpoint(f"{_ZOO}-HD-13b-9patch-144token", "Vicuna-13B", 2, 9, 1088, 954),
    KnownCheckpoint(f"{_ZOO}-HD-13b-16patch-144token", "Vicuna-13B", 2, 16, 1344, 1393),
    KnownCheckpoint(f"{_ZOO}-HD-13b-16patch-64token", "Vicuna-13B", 3, 16, 1344, 619),
    KnownCheckpoint(f"{_ZOO}-HD-13b-16patch-36token", "Vicuna-13B", 4, 16, 1344, 347),
)


@dataclass(frozen=True)
class CatalogueEntry:
    """One row of ``tpdoc models``."""

    name: str
    source: str  # "embedded" | "hub"
    llm: str
    mode: str  # "slice" (HD) | "pad" (single view)
    max_resolution: int | None
    tokens_per_tile: int
    max_tiles: int | None
    avg_tokens_per_page: int | None
    status: str  # embedded: "weights shipped" | "config only"; hub: "cached" | "partial" | "absent"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def model_catalogue() -> list[CatalogueEntry]:
    """The embedded models and the known published checkpoints, with their local status."""
    from tpdoc.weights.registry import embedded_models, load_config

    rows = []
    for name, folder in embedded_models().items():
        config = load_config(folder)
        text = config.text
        rows.append(
            CatalogueEntry(
                name=name,
                source="embedded",
                llm=f"LLaMA {text['num_hidden_layers']}x{text['hidden_size']}",
                mode=config.mode,
                max_resolution=None,
                tokens_per_tile=config.geometry.tokens_per_tile,
                max_tiles=config.max_tiles if config.mode == "slice" else None,
                avg_tokens_per_page=None,
                status="weights shipped" if find_weight_files(folder) else "config only",
            )
        )
    for known in KNOWN_CHECKPOINTS:
        rows.append(
            CatalogueEntry(
                name=known.repo_id,
                source="hub",
                llm=known.llm,
                mode="pad" if known.patch_num is None else "slice",
                max_resolution=known.max_resolution,
                tokens_per_tile=known.tokens_per_tile,
                max_tiles=known.patch_num,
                avg_tokens_per_page=known.avg_tokens,
                status=cache_status(known.repo_id),
            )
        )
    return rows


def tower_status() -> tuple[str, str]:
    """The published checkpoints' vision tower and its cache status."""
    return CLIP_L_336, cache_status(CLIP_L_336, tokenizer=False)
