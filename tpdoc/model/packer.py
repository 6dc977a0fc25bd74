"""Visual projectors: vision features of a tile -> tokens in the language model's width.

In: for each tile (view), ``features`` ``[B, N, C]`` (one CLIP hidden state, N = G*G patches)
and ``multi_level_features`` ``[B, N, L*C]`` (L hidden states concatenated on channels),
as ``tpdoc.model.vision`` produces them. Out: ``[B, Q, D]`` tokens for the language model.

Two projectors share that interface, picked by ``PackerConfig.kind``:

- ``"tokenpacker"``: the TokenPacker projector (arXiv 2407.02392), numerically equal to
  the published module and loading its weights under the published names. A coarse
  ``(G/s) x (G/s)`` grid of point queries (bilinear downsampling of ``features``) gathers
  detail from the multi-level keys/values of its own ``s x s`` patch region only
  (region-to-point injection), then an MLP lifts it to the LLM width: Q = (G/s)^2,
  i.e. 144, 64 or 36 tokens per 336px tile for s = 2, 3, 4.
- ``"mlp2x_gelu"``: LLaVA-1.5's uncompressed two-layer MLP (Q = N = G*G), the baseline.

``"avgpool"`` and ``"resampler"`` (``tpdoc.model.baselines``) make as many tokens as
TokenPacker; they exist for the projector ablation in ``benchmarks/ablation.py``.
``tpdoc.model.projectors`` builds whichever a config names and loads its weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpdoc.errors import ConfigError

PUBLISHED_HEAD_DIM = 128  # published: num_heads = embed_dim // 128
REGION_POSITION_STD = 0.5  # init of the optional region position embedding
KINDS = ("tokenpacker", "mlp2x_gelu", "avgpool", "resampler")  # the last two: tpdoc.model.baselines


@dataclass(frozen=True)
class PackerConfig:
    """Shape of a projector. Defaults are the published TokenPacker for LLaVA-1.5-7B."""

    kind: str = "tokenpacker"  # one of KINDS
    vision_dim: int = 1024  # C: width of `features` (CLIP-L hidden size)
    num_levels: int = 4  # L: levels concatenated in `multi_level_features` ([B, N, L*C])
    embed_dim: int = 1024  # E: attention width
    num_heads: int | None = None  # None -> max(1, E // PUBLISHED_HEAD_DIM): 8 for E=1024
    llm_dim: int = 4096  # D: language model hidden size (4096 for 7B, 5120 for 13B)
    grid: int = 24  # G: patch grid per tile side (N = G*G); 24 for CLIP-L/336
    scale: int = 2  # s: each output token packs an s x s patch region
    ln_eps: float = 1e-6  # LayerNorm eps of the published ln_q_1 / ln_k_1 / ln_v_1
    # tpdoc's own towers only (published: False): a learned embedding of each patch's place
    # in its s x s region, added to its key and value. Without it the region attention is
    # blind to order (a softmax over a set), so a token cannot say which of its patches
    # holds which glyph; CLIP's absolute position embeddings carry that, a convnet does not.
    region_position: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"projector kind must be one of {KINDS}, got {self.kind!r}")
        sizes = {
            "vision_dim": self.vision_dim,
            "num_levels": self.num_levels,
            "embed_dim": self.embed_dim,
            "llm_dim": self.llm_dim,
            "grid": self.grid,
            "scale": self.scale,
        }
        if self.num_heads is not None:
            sizes["num_heads"] = self.num_heads
        if not isinstance(self.region_position, bool):
            raise ConfigError(
                f"projector region_position must be true or false, got {self.region_position!r}"
            )
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"projector {name} must be a positive integer, got {value!r}")
        eps = self.ln_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"projector ln_eps must be a positive number, got {self.ln_eps!r}")
        if self.grid % self.scale:
            raise ConfigError(
                f"projector grid G={self.grid} is not divisible by scale s={self.scale}; "
                f"use an s that divides {self.grid}"
            )
        if self.embed_dim % self.heads:
            how = "given" if self.num_heads is not None else f"E // {PUBLISHED_HEAD_DIM}"
            raise ConfigError(
                f"projector embed_dim E={self.embed_dim} is not divisible by "
                f"num_heads={self.heads} ({how})"
            )

    @property
    def heads(self) -> int:
        """Attention heads: ``num_heads`` or the published rule ``E // 128`` (at least 1)."""
        if self.num_heads is not None:
            return self.num_heads
        return max(1, self.embed_dim // PUBLISHED_HEAD_DIM)

    @property
    def out_grid(self) -> int:
        """g = G // s: side of the packed token grid."""
        return self.grid // self.scale

    @property
    def patches(self) -> int:
        """N = G*G: patch tokens per tile from the vision tower."""
        return self.grid * self.grid

    @property
    def tokens_per_tile(self) -> int:
        """Tokens one tile becomes: G*G through the MLP baseline, else (G/s)^2."""
        if self.kind == "mlp2x_gelu":
            return self.patches
        return self.out_grid**2


def check_inputs(
    config: PackerConfig, features: Tensor, multi_level_features: Tensor | None
) -> None:
    """Raise ``ConfigError`` (a ``ValueError``) unless the inputs fit ``config``, with shapes."""
    n, c, lc = config.patches, config.vision_dim, config.num_levels * config.vision_dim
    if features.dim() != 3 or tuple(features.shape[1:]) != (n, c):
        raise ConfigError(
            f"{config.kind} projector expects features [B, N={n}, C={c}] "
            f"(G={config.grid}), got {tuple(features.shape)}"
        )
    if multi_level_features is None:
        return
    expected = (features.shape[0], n, lc)
    if tuple(multi_level_features.shape) != expected:
        raise ConfigError(
            f"{config.kind} projector expects multi_level_features [B, N={n}, L*C={lc}] "
            f"(L={config.num_levels}) = {expected} next to features {tuple(features.shape)}, "
            f"got {tuple(multi_level_features.shape)}"
        )


class TokenPacker(nn.Module):
    """TokenPacker: point queries inject their ``s x s`` region's multi-level detail.

    Parameter names are the published ones, so published projector state dicts load
    strictly without renaming.
    """

    def __init__(self, config: PackerConfig) -> None:
        super().__init__()
        if config.kind != "tokenpacker":
            raise ConfigError(f"TokenPacker needs kind 'tokenpacker', got {config.kind!r}")
        self.config = config
        c, e, d = config.vision_dim, config.embed_dim, config.llm_dim
        lc = config.num_levels * config.vision_dim
        self.q_proj_1 = nn.Linear(c, e, bias=False)
        self.k_proj_1 = nn.Sequential(nn.Linear(lc, e), nn.GELU(), nn.Linear(e, e))
        self.v_proj_1 = nn.Sequential(nn.Linear(lc, e), nn.GELU(), nn.Linear(e, e))
        self.ln_q_1 = nn.LayerNorm(e, eps=config.ln_eps)
        self.ln_k_1 = nn.LayerNorm(e, eps=config.ln_eps)
        self.ln_v_1 = nn.LayerNorm(e, eps=config.ln_eps)
        # Batch-first here (the published module is sequence-first): same parameters, and
        # the regrouping below reads more plainly.
        self.clip_attn = nn.MultiheadAttention(e, config.heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(e, d), nn.GELU(), nn.Linear(d, d))
        self.apply(init_weights)
        if config.region_position:
            s = config.scale
            # Comparable to the LayerNorm-ed keys/values it is added to, so order counts at once.
            self.region_pos = nn.Parameter(torch.randn(s * s, e) * REGION_POSITION_STD)

    @property
    def tokens_per_tile(self) -> int:
        return self.config.tokens_per_tile

    def _regions(self, x: Tensor) -> Tensor:
        """Group patch tokens by packed cell: ``[B, N, E]`` -> ``[B*g*g, s*s, E]``.

        Row ``b*g*g + i*g + j`` holds patches ``(i*s + a, j*s + b')`` for ``a, b' < s``.
        """
        b, _, e = x.shape
        g, s = self.config.out_grid, self.config.scale
        x = x.reshape(b, g, s, g, s, e)  # [B, N, E] -> [B, g, s, g, s, E] (row i*s+a, col j*s+b)
        x = x.permute(0, 1, 3, 2, 4, 5)  # -> [B, g, g, s, s, E]
        return x.reshape(b * g * g, s * s, e)  # -> [B*g*g, s*s, E]

    def forward(self, features: Tensor, multi_level_features: Tensor) -> Tensor:
        """``features`` ``[B, N, C]`` and ``multi_level_features`` ``[B, N, L*C]``, N = G*G
        -> packed tokens ``[B, (G/s)^2, D]`` (row-major over the packed grid)."""
        check_inputs(self.config, features, multi_level_features)
        b, _, c = features.shape
        big, g, e = self.config.grid, self.config.out_grid, self.config.embed_dim

        # 1. Point queries: bilinear downsampling G x G -> g x g, in at least float32.
        work = torch.promote_types(features.dtype, torch.float32)
        grid = features.reshape(b, big, big, c).permute(0, 3, 1, 2)  # [B, N, C] -> [B, C, G, G]
        points = F.interpolate(
            grid.to(work), size=(g, g), mode="bilinear", align_corners=False, antialias=False
        ).to(features.dtype)  # [B, C, g, g]
        points = points.permute(0, 2, 3, 1).reshape(b, g * g, c)  # -> [B, g*g, C]
        query = self.ln_q_1(self.q_proj_1(points))  # [B, g*g, E]

        # 2. Multi-level keys and values for every patch.
        key = self.ln_k_1(self.k_proj_1(multi_level_features))  # [B, N, E]
        value = self.ln_v_1(self.v_proj_1(multi_level_features))  # [B, N, E]

        # 3. Region-to-point injection: each point attends to its own s x s region only.
        query = query.reshape(b * g * g, 1, e)  # [B, g*g, E] -> [B*g*g, 1, E]
        key = self._regions(key)  # [B, N, E] -> [B*g*g, s*s, E]
        value = self._regions(value)  # [B, N, E] -> [B*g*g, s*s, E]
        if self.config.region_position:
            pos = self.region_pos.to(key.dtype)  # [s*s, E], broadcast over regions
            key, value = key + pos, value + pos
        packed, _ = self.clip_attn(query, key, value, need_weights=False)  # [B*g*g, 1, E]
        packed = packed.reshape(b, g * g, e)  # [B*g*g, 1, E] -> [B, g*g, E]

        # 4. Lift to the language model's width.
        return self.mlp(packed)  # [B, g*g, D]


def init_weights(module: nn.Module) -> None:
    """The published init: Linear weights N(0, 0.02) truncated, zero biases, unit LayerNorm.

    ``clip_attn.in_proj_weight`` is not a Linear and keeps PyTorch's own init, as published.
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MlpProjector(nn.Sequential):
    """LLaVA-1.5 ``mlp2x_gelu``: Linear(C -> D), GELU, Linear(D -> D) on every patch.

    Submodules are named ``0`` and ``2`` as published (keys ``0.weight`` ... ``2.bias``).
    """

    def __init__(self, config: PackerConfig) -> None:
        if config.kind != "mlp2x_gelu":
            raise ConfigError(f"MlpProjector needs kind 'mlp2x_gelu', got {config.kind!r}")
        c, d = config.vision_dim, config.llm_dim
        super().__init__(nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))
        self.config = config

    @property
    def tokens_per_tile(self) -> int:
        return self.config.tokens_per_tile

    def forward(  # type: ignore[override]  # named inputs instead of Sequential's one
        self, features: Tensor, multi_level_features: Tensor | None = None
    ) -> Tensor:
        """``features`` ``[B, N, C]`` (``multi_level_features`` is ignored) -> ``[B, N, D]``."""
        check_inputs(self.config, features, None)
        x = features
        for layer in self:
            x = layer(x)  # [B, N, C] -> [B, N, D]
        return x
