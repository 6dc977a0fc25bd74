"""Projectors TokenPacker is compared with in the ablation, at the same token count.

In: ``features`` ``[B, N, C]`` (N = G*G) and ``multi_level_features`` ``[B, N, L*C]``,
exactly as the TokenPacker gets them, and a ``PackerConfig`` whose ``scale`` fixes the
output grid g = G/s. Out: ``[B, g*g, D]`` tokens, as many as TokenPacker makes.

- ``"avgpool"``: average pooling of the patch grid by s x s, then LLaVA's two-layer MLP:
  the compression with no learning in it.
- ``"resampler"``: a Q-Former-like learned-query resampler: g*g learned queries
  cross-attend to every patch of the tile (multi-level keys and values, a learned
  position per patch), then an MLP: compression learned globally instead of per region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpdoc.errors import ConfigError
from tpdoc.model.packer import PackerConfig, check_inputs, init_weights


class AvgPoolProjector(nn.Module):
    def __init__(self, config: PackerConfig) -> None:
        super().__init__()
        if config.kind != "avgpool":
            raise ConfigError(f"AvgPoolProjector needs kind 'avgpool', got {config.kind!r}")
        self.config = config
        c, d = config.vision_dim, config.llm_dim
        self.mlp = nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))
        self.apply(init_weights)

    @property
    def tokens_per_tile(self) -> int:
        return self.config.tokens_per_tile

    def forward(self, features: Tensor, multi_level_features: Tensor | None = None) -> Tensor:
        check_inputs(self.config, features, None)
        b, _, c = features.shape
        big, s = self.config.grid, self.config.scale
        grid = features.reshape(b, big, big, c).permute(0, 3, 1, 2)  # [B, N, C] -> [B, C, G, G]
        pooled = F.avg_pool2d(grid, s)  # -> [B, C, g, g]
        pooled = pooled.flatten(2).transpose(1, 2)  # -> [B, g*g, C]
        return self.mlp(pooled)  # [B, g*g, D]


class ResamplerProjector(nn.Module):
    def __init__(self, config: PackerConfig) -> None:
        super().__init__()
        if config.kind != "resampler":
            raise ConfigError(f"ResamplerProjector needs kind 'resampler', got {config.kind!r}")
        self.config = config
        e, d = config.embed_dim, config.llm_dim
        lc = config.num_levels * config.vision_dim
        self.queries = nn.Parameter(torch.randn(config.tokens_per_tile, e) * 0.02)
        self.positions = nn.Parameter(torch.randn(config.patches, e) * 0.02)
        self.kv_proj = nn.Linear(lc, e)
        self.ln_q = nn.LayerNorm(e, eps=config.ln_eps)
        self.ln_kv = nn.LayerNorm(e, eps=config.ln_eps)
        self.attn = nn.MultiheadAttention(e, config.heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(e, d), nn.GELU(), nn.Linear(d, d))
        for module in (self.kv_proj, self.ln_q, self.ln_kv, self.mlp):
            module.apply(init_weights)

    @property
    def tokens_per_tile(self) -> int:
        return self.config.tokens_per_tile

    def forward(self, features: Tensor, multi_level_features: Tensor) -> Tensor:
        check_inputs(self.config, features, multi_level_features)
        b = features.shape[0]
        kv = self.ln_kv(self.kv_proj(multi_level_features) + self.positions)  # [B, N, E]
        query = self.ln_q(self.queries).expand(b, -1, -1)  # [g*g, E] -> [B, g*g, E]
        out, _ = self.attn(query, kv, kv, need_weights=False)  # [B, g*g, E]
        return self.mlp(out)  # [B, g*g, D]
