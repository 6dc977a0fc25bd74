"""The embedded model's vision tower: a small convolutional network for reading print.

In: normalised views ``[V, 3, T, T]`` (any multiple of the total stride works, so the
tower trains on small crops and runs on full tiles). Out: ``VisionFeatures`` on the
``G x G`` grid (``G = T / stride``) in exactly the interface the packer takes from CLIP:
``features`` ``[V, G*G, C]`` and ``multi_level_features`` ``[V, G*G, L*C]``.

Why convolutions: glyphs are small and local, a convolutional stem is the inductive bias
that reads them cheaply on a CPU, and without global attention or absolute positions the
tower is translation-equivariant, so reading can be pretrained on crops a fraction of a
tile's cost. Global reasoning is left to the packer and the language model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tpdoc.errors import ConfigError
from tpdoc.model.vision import FeatureSelection, VisionFeatures, VisionTower, select_features

DEFAULT_LEVELS = 4


@dataclass(frozen=True)
class ConvNetConfig:
    """Shape of the tower; ``patch_size`` is the total stride (one grid cell per patch)."""

    image_size: int = 384
    patch_size: int = 16
    hidden_size: int = 192  # C
    stem_channels: tuple[int, ...] = (32, 64, 96)  # one stride-2 conv each
    depth: int = 4  # blocks at the final stride; hidden states h0 (input) .. h_depth
    mlp_ratio: int = 3
    kernel_size: int = 7  # depthwise kernel of every block
    num_channels: int = 3
    # More blocks after each stem convolution (one count per stem stage; the last stage's
    # come after its stem block): reading capacity where a glyph still spans several cells.
    stage_blocks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem_channels", tuple(int(c) for c in self.stem_channels))
        object.__setattr__(self, "stage_blocks", tuple(int(n) for n in self.stage_blocks))
        if (
            len(self.stage_blocks) > len(self.stem_channels)
            or min(self.stage_blocks, default=0) < 0
        ):
            raise ConfigError(
                f"convnet stage_blocks {self.stage_blocks} needs a count >= 0 for each of at most "
                f"{len(self.stem_channels)} stem stages"
            )
        stride = 2 ** (len(self.stem_channels) + 1)
        if stride != self.patch_size:
            raise ConfigError(
                f"convnet stride 2**(len(stem_channels)+1) = {stride} must equal patch_size "
                f"{self.patch_size} (stem_channels={self.stem_channels})"
            )
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"convnet image_size {self.image_size} is not a multiple of patch_size "
                f"{self.patch_size}"
            )
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"convnet kernel_size must be odd, got {self.kernel_size}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConvNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown convnet config fields: {', '.join(unknown)}")
        return cls(**data)

    @property
    def num_hidden_states(self) -> int:
        return self.depth + 1


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels at every position of ``[B, C, H, W]`` (crop-independent)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    """Depthwise conv, channel norm, pointwise MLP, residual (ConvNeXt-style)."""

    def __init__(self, channels: int, mlp_ratio: int, kernel_size: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
        )
        self.norm = ChannelNorm(channels)
        self.pw1 = nn.Conv2d(channels, channels * mlp_ratio, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(channels * mlp_ratio, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))  # [B, C, H, W]

    def start_as_identity(self) -> Block:
        """Zero the last projection: a block added to a trained tower changes nothing until
        it learns, so a grown tower starts from its checkpoint's accuracy."""
        nn.init.zeros_(self.pw2.weight)
        nn.init.zeros_(self.pw2.bias)
        return self


class ConvNet(nn.Module):
    """Stride-2 stem convolutions, a block at stride 8, then ``depth`` blocks at the grid."""

    def __init__(self, config: ConvNetConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        cin = config.num_channels
        counts = config.stage_blocks + (0,) * (len(config.stem_channels) - len(config.stage_blocks))
        self.stage_blocks = nn.ModuleList()  # after each stem convolution (empty: none)
        for cout, count in zip(config.stem_channels, counts, strict=True):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GELU()]
            self.stage_blocks.append(nn.Sequential(*(
                Block(cout, config.mlp_ratio, config.kernel_size).start_as_identity()
                for _ in range(count)
            )))  # fmt: skip
            cin = cout
        self.stem = nn.Sequential(*layers)
        self.stem_block = Block(cin, config.mlp_ratio, config.kernel_size)
        self.down = nn.Sequential(ChannelNorm(cin), nn.Conv2d(cin, config.hidden_size, 2, stride=2))
        self.blocks = nn.ModuleList(
            Block(config.hidden_size, config.mlp_ratio, config.kernel_size)
            for _ in range(config.depth)
        )
        self.out_norm = ChannelNorm(config.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, H, W]`` -> hidden states, each ``[B, (H/16)*(W/16), C]`` (row-major)."""
        x = pixel_values
        for i, blocks in enumerate(self.stage_blocks):  # [B, 3, H, W] -> [B, C_i, H/2^(i+1), ..]
            x = self.stem[2 * i + 1](self.stem[2 * i](x))
            x = blocks(x) if i < len(self.stage_blocks) - 1 else blocks(self.stem_block(x))
        x = self.down(x)  # [B, C, H/16, W/16]
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        # Normalise each level so the packer sees comparable scales; [B, C, h, w] -> [B, h*w, C]
        return [self.out_norm(s).flatten(2).transpose(1, 2) for s in states]


class ConvVisionTower(VisionTower):
    """``ConvNet`` behind the ``VisionTower`` interface."""

    def __init__(self, config: ConvNetConfig, selection: FeatureSelection | None = None) -> None:
        super().__init__()
        self.net = ConvNet(config)
        # Default: the last state as features, the last (up to) four as levels.
        default_levels = tuple(range(config.num_hidden_states))[-DEFAULT_LEVELS:]
        self.selection = selection or FeatureSelection(select_layer=-1, levels=default_levels)
        self.selection.check(config.num_hidden_states)
        self.tile_size = config.image_size
        self.patch_grid = config.image_size // config.patch_size
        self.hidden_size = config.hidden_size
        self.num_levels = len(self.selection.levels)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], selection: FeatureSelection | None = None
    ) -> ConvVisionTower:
        return cls(ConvNetConfig.from_dict(config), selection)

    def hidden_states(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        param = next(self.net.parameters())
        # Channels-last: oneDNN's convolutions and the channel norms' permutes run faster.
        x = pixel_values.to(param.device, param.dtype, memory_format=torch.channels_last)
        return self.net(x)

    def forward(self, pixel_values: torch.Tensor) -> VisionFeatures:
        """``[V, 3, T, T]`` -> features ``[V, G*G, C]``, multi-level ``[V, G*G, L*C]``."""
        return select_features(self.hidden_states(pixel_values), self.selection, has_cls=False)
