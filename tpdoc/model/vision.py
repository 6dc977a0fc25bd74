"""Vision towers: normalised tiles -> the two feature maps TokenPacker takes.

In: ``pixel_values`` ``[V, 3, T, T]`` (all views of one or several pages, one batched
forward). Out: ``VisionFeatures`` with ``features`` ``[V, G*G, C]`` (hidden state at
``select_layer``) and ``multi_level_features`` ``[V, G*G, L*C]`` (hidden states at
``levels`` concatenated on channels), CLS token dropped, exactly as the published
TokenPacker reads CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tpdoc.errors import ConfigError

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig, CLIPVisionModel

# Published choice for CLIP ViT-L/14-336 (25 hidden states): levels 12, 16, 22, 23.
PUBLISHED_LEVELS = (12, 16, 22, 23)
# Only 'patch' (CLS dropped): TokenPacker needs exactly the G x G patch grid, so LLaVA's
# 'cls_patch' (CLS kept) cannot feed it.
SELECT_FEATURES = ("patch",)


@dataclass(frozen=True)
class FeatureSelection:
    """Which hidden states become ``features`` and ``multi_level_features``."""

    select_layer: int = -2
    levels: tuple[int, ...] = PUBLISHED_LEVELS
    select_feature: str = "patch"

    def __post_init__(self) -> None:
        if self.select_feature not in SELECT_FEATURES:
            raise ConfigError(
                f"select_feature must be one of {SELECT_FEATURES}, got {self.select_feature!r}"
            )
        if not self.levels:
            raise ConfigError("levels must name at least one hidden state")
        object.__setattr__(self, "levels", tuple(int(x) for x in self.levels))

    def check(self, num_hidden_states: int) -> None:
        """Raise if an index falls outside ``num_hidden_states`` (layers + embeddings)."""
        for index in (self.select_layer, *self.levels):
            if not -num_hidden_states <= index < num_hidden_states:
                raise ConfigError(
                    f"hidden-state index {index} is out of range for a tower with "
                    f"{num_hidden_states} hidden states (select_layer={self.select_layer}, "
                    f"levels={self.levels})"
                )


@dataclass
class VisionFeatures:
    """Named outputs of a vision tower (no tuples: see the packer's inputs)."""

    features: torch.Tensor  # [V, N, C]
    multi_level_features: torch.Tensor  # [V, N, L*C]


class VisionTower(nn.Module):
    """Interface every tower implements; the packer only sees ``VisionFeatures``."""

    tile_size: int
    patch_grid: int  # G: patches per tile side
    hidden_size: int  # C
    num_levels: int  # L

    def forward(self, pixel_values: torch.Tensor) -> VisionFeatures:  # pragma: no cover
        raise NotImplementedError


def select_features(
    hidden_states: tuple[torch.Tensor, ...] | list[torch.Tensor],
    selection: FeatureSelection,
    has_cls: bool = True,
) -> VisionFeatures:
    """Pick and concatenate hidden states ``[V, 1+N, C]`` (CLS first, if ``has_cls``)."""
    single = hidden_states[selection.select_layer]  # [V, 1+N, C]
    multi = torch.cat([hidden_states[i] for i in selection.levels], dim=-1)  # [V, 1+N, L*C]
    if has_cls and selection.select_feature == "patch":
        single, multi = single[:, 1:], multi[:, 1:]  # drop CLS -> [V, N, *]
    return VisionFeatures(features=single, multi_level_features=multi)


class ClipVisionTower(VisionTower):
    """A transformers ``CLIPVisionModel`` of any size, read the published way."""

    def __init__(self, clip: CLIPVisionModel, selection: FeatureSelection | None = None) -> None:
        super().__init__()
        self.vision_tower = clip  # attribute name matches published `vision_tower.vision_tower.*`
        self.selection = selection or FeatureSelection()
        cfg = clip.config
        self.selection.check(cfg.num_hidden_layers + 1)
        if cfg.image_size % cfg.patch_size:
            raise ConfigError(
                f"CLIP image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}"
            )
        self.tile_size = cfg.image_size
        self.patch_grid = cfg.image_size // cfg.patch_size
        self.hidden_size = cfg.hidden_size
        self.num_levels = len(self.selection.levels)

    @classmethod
    def from_config(
        cls, config: CLIPVisionConfig | dict[str, Any], selection: FeatureSelection | None = None
    ) -> ClipVisionTower:
        """Random-initialised tower (tests, or before loading a state dict)."""
        from transformers import CLIPVisionConfig, CLIPVisionModel

        if isinstance(config, dict):
            config = CLIPVisionConfig(**config)
        return cls(CLIPVisionModel(config), selection)

    def forward(self, pixel_values: torch.Tensor) -> VisionFeatures:
        """``[V, 3, T, T]`` -> features ``[V, G*G, C]``, multi-level ``[V, G*G, L*C]``."""
        param = next(self.vision_tower.parameters())
        out = self.vision_tower(
            pixel_values.to(device=param.device, dtype=param.dtype), output_hidden_states=True
        )
        return select_features(out.hidden_states, self.selection)
