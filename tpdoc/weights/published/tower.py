"""The CLIP vision tower a published checkpoint names in ``mm_vision_tower``.

In: the ``mm_vision_tower`` spec as written (a folder, a hub id, or an author's local path
such as ``./clip-vit-large-patch14-336``) and the checkpoint folder. Out: a ``TowerSource``
(a folder, else the hub id it names, with CLIP-L/336's known geometry standing in when only
the config is needed and it is not cached), the tower's CLIP vision config with its
normalisation, and the tower repo ``tpdoc pull`` must still fetch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tpdoc.documents.tiling import CLIP_MEAN, CLIP_STD
from tpdoc.errors import ModelFormatError, ModelNotFoundError
from tpdoc.model.config import CONFIG_FILE
from tpdoc.weights.files import checkpoint_keys, find_weight_files
from tpdoc.weights.hub import (
    Report,
    cached_snapshot,
    hub_model_folder,
    looks_like_hub_id,
    stderr_report,
)
from tpdoc.weights.published.format import is_published_config
from tpdoc.weights.published.keys import TOWER_PREFIX

CLIP_VISION_FIELDS = (
    "hidden_size", "intermediate_size", "projection_dim", "num_hidden_layers",
    "num_attention_heads", "num_channels", "image_size", "patch_size", "hidden_act",
    "layer_norm_eps", "attention_dropout", "initializer_range", "initializer_factor",
)  # fmt: skip

CLIP_L_336 = "openai/clip-vit-large-patch14-336"
# Last path component of a tower folder -> the hub id it names (the reference's training
# scripts pass local paths such as ./clip-vit-large-patch14-336).
KNOWN_TOWERS = {
    name: f"openai/{name}"
    for name in (
        "clip-vit-large-patch14-336",
        "clip-vit-large-patch14",
        "clip-vit-base-patch16",
        "clip-vit-base-patch32",
    )
}
# The vision half of openai/clip-vit-large-patch14-336 (ViT-L/14 at 336 px), used only when
# its config.json is not at hand and only the geometry is needed, or its weights come from
# the checkpoint.
KNOWN_TOWER_CONFIGS: dict[str, dict[str, Any]] = {
    CLIP_L_336: {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "projection_dim": 768,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "num_channels": 3,
        "image_size": 336,
        "patch_size": 14,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }
}


@dataclass(frozen=True)
class TowerSource:
    """Where the CLIP tower named by ``mm_vision_tower`` was found."""

    spec: str  # as written in config.json
    folder: Path | None  # its config.json (and weights); None: known geometry only
    hub_id: str | None = None


def _locate_tower(spec: str, checkpoint: Path, report: Report) -> str | TowerSource:
    """A local tower folder, or the hub id ``spec`` names (mapping absent author paths)."""
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, checkpoint / path]
    for candidate in candidates:
        if (candidate / CONFIG_FILE).is_file():
            return TowerSource(spec, candidate)
    if looks_like_hub_id(spec):
        return spec
    mapped = KNOWN_TOWERS.get(path.name)
    if mapped is None:
        raise ModelNotFoundError(
            f"{checkpoint}: mm_vision_tower {spec!r} is neither a folder here nor a hub id "
            f"tpdoc knows (known: {', '.join(sorted(KNOWN_TOWERS.values()))}); download the "
            "tower and set mm_vision_tower in config.json to its folder"
        )
    report(f"mm_vision_tower {spec!r} does not exist here; using the hub id it names: {mapped}")
    return mapped


def resolve_tower(
    spec: str, checkpoint: Path, *, weights: bool, report: Report | None = None
) -> TowerSource:
    """Find the tower: a folder (absolute, or relative to the working directory or the
    checkpoint), else a hub id (downloaded if online). With ``weights=False`` only its
    config is needed, and the known CLIP-L/336 geometry stands in when it is not cached."""
    report = report or stderr_report
    found = _locate_tower(spec, checkpoint, report)
    if isinstance(found, TowerSource):
        return found
    hub_id = found
    if weights:
        return TowerSource(spec, hub_model_folder(hub_id, weights=True, tokenizer=False), hub_id)
    cached = cached_snapshot(hub_id)
    if cached is not None and (cached / CONFIG_FILE).is_file():
        return TowerSource(spec, cached, hub_id)
    if hub_id in KNOWN_TOWER_CONFIGS:
        cfg = KNOWN_TOWER_CONFIGS[hub_id]
        report(
            f"{hub_id} is not cached: using its known geometry ({cfg['image_size']} px tiles, "
            f"{cfg['patch_size']} px patches)"
        )
        return TowerSource(spec, None, hub_id)
    return TowerSource(spec, hub_model_folder(hub_id, weights=False), hub_id)


def read_tower_config(
    tower: TowerSource,
) -> tuple[dict[str, Any], tuple[float, float, float], tuple[float, float, float]]:
    """The tower's CLIP vision config (complete, JSON-ready) and its normalisation."""
    from transformers import CLIPVisionConfig

    from tpdoc.model.config import read_config_json

    if tower.folder is None:
        assert tower.hub_id is not None  # resolve_tower returns a folder or a known hub id
        data: dict[str, Any] = dict(KNOWN_TOWER_CONFIGS[tower.hub_id])
        where = tower.hub_id
    else:
        data = read_config_json(tower.folder)
        where = str(tower.folder)
        if data.get("model_type") == "clip":
            data = data.get("vision_config") or {}
        elif data.get("model_type") != "clip_vision_model":
            raise ModelFormatError(
                f"{where}: the vision tower must be a CLIP model (model_type 'clip' or "
                f"'clip_vision_model'), got {data.get('model_type')!r}"
            )
    given = {k: data[k] for k in CLIP_VISION_FIELDS if k in data}
    full = CLIPVisionConfig(**given).to_dict()
    vision = {k: full[k] for k in CLIP_VISION_FIELDS if k in full}
    mean, std = CLIP_MEAN, CLIP_STD
    pre = tower.folder / "preprocessor_config.json" if tower.folder else None
    if pre is not None and pre.is_file():
        try:
            values = json.loads(pre.read_text(encoding="utf-8"))
            mean = tuple(float(x) for x in values.get("image_mean", mean))  # type: ignore[assignment]
            std = tuple(float(x) for x in values.get("image_std", std))  # type: ignore[assignment]
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelFormatError(f"{pre}: unreadable preprocessor config: {exc}") from exc
    return vision, mean, std


def _separate_tower_spec(folder: Path) -> str | None:
    """``mm_vision_tower`` of a published checkpoint that reads its tower's weights from
    elsewhere; None for other folders and for checkpoints that carry the tower."""
    from tpdoc.model.config import read_config_json

    data = read_config_json(folder)
    if not is_published_config(data) or not isinstance(data.get("mm_vision_tower"), str):
        return None
    weights = find_weight_files(folder)
    if weights is not None and any(k.startswith(TOWER_PREFIX) for k in checkpoint_keys(weights)):
        return None  # the checkpoint carries the tower
    return data["mm_vision_tower"]


def tower_repo_to_pull(folder: Path, report: Report | None = None) -> str | None:
    """The hub id of the tower a downloaded published checkpoint still needs, if any."""
    spec = _separate_tower_spec(folder)
    if spec is None:
        return None
    found = _locate_tower(spec, folder, report or stderr_report)
    return None if isinstance(found, TowerSource) else found


def separate_tower_folder(folder: Path) -> Path | None:
    """The folder a published checkpoint's vision tower weights are loaded from (a local
    folder or a cached hub snapshot), for the visual-token cache's model identity; None for
    other folders, for checkpoints that carry the tower, and for a tower not at hand."""
    spec = _separate_tower_spec(Path(folder))
    if spec is None:
        return None
    return resolve_tower(spec, Path(folder), weights=False, report=lambda _: None).folder
