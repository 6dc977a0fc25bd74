"""The ablation's projectors: as many tokens as TokenPacker, and what each one looks at."""

from __future__ import annotations

import pytest
import torch

from tpdoc.model.config import ModelConfig
from tpdoc.model.packer import PackerConfig
from tpdoc.model.projectors import build_projector


def config(kind: str, scale: int = 2) -> PackerConfig:
    return PackerConfig(kind=kind, vision_dim=8, num_levels=2, embed_dim=8, num_heads=2,
                        llm_dim=12, grid=6, scale=scale)  # fmt: skip


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 36, 8, generator=g), torch.randn(2, 36, 16, generator=g)


@pytest.mark.parametrize("kind", ["avgpool", "resampler", "tokenpacker"])
@pytest.mark.parametrize("scale", [2, 3])
def test_same_token_count_as_tokenpacker(kind, scale):
    c = config(kind, scale)
    out = build_projector(c)(*inputs())
    assert out.shape == (2, (6 // scale) ** 2, 12) == (2, c.tokens_per_tile, 12)


def test_avgpool_averages_each_region_before_the_mlp():
    projector = build_projector(config("avgpool"))
    features, levels = inputs()
    grid = features.reshape(2, 3, 2, 3, 2, 8)  # [B, g, s, g, s, C]
    means = grid.mean(dim=(2, 4)).reshape(2, 9, 8)  # [B, g*g, C]
    torch.testing.assert_close(projector(features, levels), projector.mlp(means))


def test_resampler_sees_the_whole_tile_and_tokenpacker_one_region():
    features, levels = inputs()
    moved = levels.clone()
    moved[:, 0] += 5.0  # one patch, in the top-left region
    for kind, changed_tokens in (("resampler", 9), ("tokenpacker", 1)):
        torch.manual_seed(0)
        projector = build_projector(config(kind))
        before, after = projector(features, levels), projector(features, moved)
        changed = (before - after).abs().amax(dim=(0, 2)) > 1e-6
        assert int(changed.sum()) == changed_tokens, kind


def test_model_config_accepts_the_baselines_and_counts_their_tokens():
    from tests.test_train import tiny_conv_config

    base = tiny_conv_config()
    from dataclasses import replace

    for kind in ("avgpool", "resampler"):
        cfg = ModelConfig.from_dict({**base.to_dict(), "projector": {
            **base.to_dict()["projector"], "kind": kind}})  # fmt: skip
        assert cfg.geometry.tokens_per_tile == 4
        assert replace(cfg.projector, kind="mlp2x_gelu").tokens_per_tile == 16
