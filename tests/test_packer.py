"""TokenPacker and the MLP baseline against a plainly written per-region reference.

The reference below is written from the paper's description and PyTorch's documented
formulas (bilinear with half-pixel centres, multi-head attention), one region, one head
at a time, so that the vectorised module has something independent to agree with.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tpdoc.errors import ConfigError, WeightsError
from tpdoc.model.packer import MlpProjector, PackerConfig, TokenPacker
from tpdoc.model.projectors import build_projector, load_projector_state

PREFIX = "model.mm_projector."


def tiny_config(scale: int = 2, **overrides) -> PackerConfig:
    """C=16, L=3, E=32 in 4 heads, D=24, G=12."""
    values = dict(
        vision_dim=16, num_levels=3, embed_dim=32, num_heads=4, llm_dim=24, grid=12, scale=scale
    )
    return PackerConfig(**{**values, **overrides})


def published_shapes(c: int, levels: int, e: int, d: int) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of the published TokenPacker state dict, written by hand."""
    lc = levels * c
    shapes: dict[str, tuple[int, ...]] = {"q_proj_1.weight": (e, c)}
    for name in ("k_proj_1", "v_proj_1"):
        shapes |= {
            f"{name}.0.weight": (e, lc),
            f"{name}.0.bias": (e,),
            f"{name}.2.weight": (e, e),
            f"{name}.2.bias": (e,),
        }
    for name in ("ln_q_1", "ln_k_1", "ln_v_1"):
        shapes |= {f"{name}.weight": (e,), f"{name}.bias": (e,)}
    shapes |= {
        "clip_attn.in_proj_weight": (3 * e, e),
        "clip_attn.in_proj_bias": (3 * e,),
        "clip_attn.out_proj.weight": (e, e),
        "clip_attn.out_proj.bias": (e,),
        "mlp.0.weight": (d, e),
        "mlp.0.bias": (d,),
        "mlp.2.weight": (d, d),
        "mlp.2.bias": (d,),
    }
    return shapes


def random_state(config: PackerConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float64 weights for every published key, LayerNorms included."""
    gen = torch.Generator().manual_seed(seed)
    shapes = published_shapes(
        config.vision_dim, config.num_levels, config.embed_dim, config.llm_dim
    )
    state = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen, dtype=torch.float64)
        if name.startswith("ln_") and name.endswith(".weight"):
            state[name] = 1.0 + 0.3 * noise
        elif len(shape) == 2:
            state[name] = noise / math.sqrt(shape[1])
        else:
            state[name] = 0.3 * noise
    return state


def random_inputs(config: PackerConfig, batch: int = 2, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    n, c, lc = config.patches, config.vision_dim, config.num_levels * config.vision_dim
    features = torch.randn(batch, n, c, generator=gen, dtype=torch.float64)
    multi = torch.randn(batch, n, lc, generator=gen, dtype=torch.float64)
    return features, multi


# ---------------------------------------------------------------- the plain reference


def bilinear_reference(image: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``[C, H, W]`` -> ``[C, out_h, out_w]``: align_corners=False (half-pixel centres),
    source coordinates below 0 clamped to 0, the far neighbour clamped to the last pixel."""
    _, in_h, in_w = image.shape

    def source(o: int, in_size: int, out_size: int) -> tuple[int, int, float]:
        x = (o + 0.5) * in_size / out_size - 0.5
        x = max(x, 0.0)
        i0 = min(int(math.floor(x)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        return i0, i1, x - i0

    out = torch.empty(image.shape[0], out_h, out_w, dtype=image.dtype)
    for oy in range(out_h):
        y0, y1, ly = source(oy, in_h, out_h)
        for ox in range(out_w):
            x0, x1, lx = source(ox, in_w, out_w)
            top = (1 - lx) * image[:, y0, x0] + lx * image[:, y0, x1]
            bottom = (1 - lx) * image[:, y1, x0] + lx * image[:, y1, x1]
            out[:, oy, ox] = (1 - ly) * top + ly * bottom
    return out


def packer_reference(
    state: dict[str, torch.Tensor],
    config: PackerConfig,
    features: torch.Tensor,
    multi: torch.Tensor,
) -> torch.Tensor:
    """TokenPacker one batch item, one packed cell and one head at a time."""
    big, s, g = config.grid, config.scale, config.out_grid
    e, heads, d = config.embed_dim, config.heads, config.llm_dim
    hd = e // heads

    def linear(x, name, bias=True):
        y = x @ state[f"{name}.weight"].T
        return y + state[f"{name}.bias"] if bias else y

    def gelu(x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    def layer_norm(x, name):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        normed = (x - mean) / torch.sqrt(var + config.ln_eps)
        return normed * state[f"{name}.weight"] + state[f"{name}.bias"]

    def two_layer(x, name):
        return linear(gelu(linear(x, f"{name}.0")), f"{name}.2")

    w_in, b_in = state["clip_attn.in_proj_weight"], state["clip_attn.in_proj_bias"]
    wq, wk, wv = w_in[:e], w_in[e : 2 * e], w_in[2 * e :]
    bq, bk, bv = b_in[:e], b_in[e : 2 * e], b_in[2 * e :]

    out = torch.zeros(features.shape[0], g * g, d, dtype=features.dtype)
    for b in range(features.shape[0]):
        image = torch.empty(config.vision_dim, big, big, dtype=features.dtype)
        for r in range(big):
            for col in range(big):
                image[:, r, col] = features[b, r * big + col]
        points = bilinear_reference(image, g, g)
        for i in range(g):
            for j in range(g):
                q = layer_norm(linear(points[:, i, j], "q_proj_1", bias=False), "ln_q_1")
                region = [(i * s + a) * big + (j * s + c) for a in range(s) for c in range(s)]
                k = layer_norm(two_layer(multi[b, region], "k_proj_1"), "ln_k_1")  # [s*s, E]
                v = layer_norm(two_layer(multi[b, region], "v_proj_1"), "ln_v_1")
                qp, kp, vp = wq @ q + bq, k @ wk.T + bk, v @ wv.T + bv
                per_head = []
                for h in range(heads):
                    cols = slice(h * hd, (h + 1) * hd)
                    scores = kp[:, cols] @ qp[cols] / math.sqrt(hd)  # [s*s]
                    weights = torch.exp(scores - scores.max())
                    weights = weights / weights.sum()
                    per_head.append(weights @ vp[:, cols])
                attended = linear(torch.cat(per_head), "clip_attn.out_proj")
                out[b, i * g + j] = two_layer(attended, "mlp")
    return out


def loaded_packer(config: PackerConfig, state, dtype=torch.float64) -> TokenPacker:
    packer = TokenPacker(config).to(dtype)
    packer.load_state_dict(state, strict=True)  # published names, no renaming
    return packer.eval()


# ---------------------------------------------------------------- numerics


@pytest.mark.parametrize(
    ("size", "out"), [((12, 12), (6, 6)), ((12, 12), (4, 4)), ((5, 7), (3, 9))]
)
def test_bilinear_reference_matches_interpolate(size, out):
    image = torch.randn(3, *size, dtype=torch.float64)
    expected = F.interpolate(
        image[None], size=out, mode="bilinear", align_corners=False, antialias=False
    )[0]
    torch.testing.assert_close(bilinear_reference(image, *out), expected)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tokenpacker_matches_reference(scale):
    config = tiny_config(scale)
    state = random_state(config, seed=scale)
    features, multi = random_inputs(config)
    expected = packer_reference(state, config, features, multi)
    assert expected.shape == (2, (12 // scale) ** 2, 24)

    with torch.no_grad():
        got = loaded_packer(config, state)(features, multi)
        torch.testing.assert_close(got, expected)  # float64: exact up to rounding
        got32 = loaded_packer(config, state, torch.float32)(features.float(), multi.float())
    torch.testing.assert_close(got32, expected.float(), rtol=1e-4, atol=1e-5)


def test_each_token_sees_only_its_own_region():
    config = tiny_config(3)
    packer = loaded_packer(config, random_state(config))
    features, multi = random_inputs(config, batch=1)
    changed = multi.clone()
    changed[0, 4 * 12 + 7] += 5.0  # patch (row 4, col 7) lies in packed cell (1, 2)
    with torch.no_grad():
        delta = (packer(features, changed) - packer(features, multi)).abs().sum(-1)[0]
    assert delta.nonzero().flatten().tolist() == [1 * 4 + 2]


def swap_cells_within_regions(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Mirror every 2 x 2 region left to right: ``[B, G*G, C]`` with column pairs swapped."""
    b, _, c = x.shape
    cells = x.reshape(b, grid, grid // 2, 2, c)
    return cells.flip(3).reshape(b, grid * grid, c)


@pytest.mark.parametrize("region_position", [False, True])
def test_only_a_region_position_tells_a_token_which_patch_is_where(region_position):
    config = tiny_config(2, region_position=region_position)
    torch.manual_seed(0)
    packer = build_projector(config)
    features, multi = (x.float() for x in random_inputs(config, batch=1))
    # Mirroring each region leaves the bilinear point (the region's mean) unchanged, so any
    # change comes from the attention knowing the patches' places.
    mirrored = swap_cells_within_regions(features, 12), swap_cells_within_regions(multi, 12)
    with torch.no_grad():
        out = packer(features, multi)
        delta = ((packer(*mirrored) - out).abs().max() / out.abs().max()).item()
    assert delta > 1e-2 if region_position else delta < 1e-5
    assert ("region_pos" in packer.state_dict()) == region_position


def test_bf16_in_bf16_out():
    config = tiny_config(2)
    packer = build_projector(config).to(torch.bfloat16)
    features, multi = random_inputs(config)
    with torch.no_grad():
        out = packer(features.bfloat16(), multi.bfloat16())
    assert out.dtype == torch.bfloat16
    assert out.shape == (2, 36, 24)
    assert torch.isfinite(out.float()).all()


def test_published_init():
    packer = TokenPacker(tiny_config(2, embed_dim=64, num_heads=None, llm_dim=64))
    assert packer.clip_attn.num_heads == 1  # 64 // 128, at least one
    assert 0.015 < packer.mlp[2].weight.std().item() < 0.025
    assert 0.015 < packer.clip_attn.out_proj.weight.std().item() < 0.025
    for name in ("k_proj_1.0.bias", "mlp.2.bias", "clip_attn.out_proj.bias", "ln_q_1.bias"):
        assert not packer.get_parameter(name).any(), name
    assert (packer.ln_v_1.weight == 1).all()


# ---------------------------------------------------------------- published size and config


@pytest.mark.parametrize("llm_dim", [4096, 5120])
def test_published_size_key_set_and_shapes(llm_dim):
    config = PackerConfig(llm_dim=llm_dim)
    with torch.device("meta"):
        packer = build_projector(config)
    shapes = {k: tuple(v.shape) for k, v in packer.state_dict().items()}
    assert shapes == published_shapes(1024, 4, 1024, llm_dim)
    assert packer.clip_attn.num_heads == 8 == config.heads
    assert packer.tokens_per_tile == 144


@pytest.mark.parametrize(("scale", "tokens"), [(1, 576), (2, 144), (3, 64), (4, 36)])
def test_tokens_per_tile(scale, tokens):
    packed = PackerConfig(scale=scale)
    assert (packed.out_grid, packed.tokens_per_tile, packed.patches) == (24 // scale, tokens, 576)
    mlp = PackerConfig(kind="mlp2x_gelu", scale=scale)
    assert mlp.tokens_per_tile == 576
    assert build_projector(mlp).tokens_per_tile == 576


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"grid": 24, "scale": 5}, ["G=24", "s=5"]),
        ({"embed_dim": 100, "num_heads": 3}, ["E=100", "num_heads=3"]),
        ({"embed_dim": 257}, ["E=257", "num_heads=2", "E // 128"]),
        ({"kind": "perceiver"}, ["'perceiver'", "tokenpacker", "mlp2x_gelu", "resampler"]),
        ({"vision_dim": 0}, ["vision_dim", "0"]),
        ({"scale": -2}, ["scale", "-2"]),
        ({"num_heads": 0}, ["num_heads", "0"]),
        ({"llm_dim": 40.0}, ["llm_dim", "40.0"]),
        ({"ln_eps": 0.0}, ["ln_eps", "0.0"]),
        ({"region_position": "yes"}, ["region_position", "'yes'"]),
    ],
)
def test_config_errors_show_the_values(overrides, shown):
    with pytest.raises(ConfigError) as info:
        PackerConfig(**overrides)
    for text in shown:
        assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_wrong_input_shapes_are_named():
    config = tiny_config(2)
    packer = build_projector(config)
    features, multi = random_inputs(config)
    features, multi = features.float(), multi.float()
    with pytest.raises(ConfigError, match=r"N=144.*\(2, 100, 16\)"):
        packer(features[:, :100], multi[:, :100])
    with pytest.raises(ConfigError, match=r"L\*C=48.*\(2, 144, 32\)"):
        packer(features, multi[..., :32])
    with pytest.raises(ConfigError, match=r"C=16.*\(2, 144, 8\)"):
        packer(features[..., :8], multi)


def test_classes_refuse_the_other_kind():
    with pytest.raises(ConfigError, match="mlp2x_gelu"):
        TokenPacker(PackerConfig(kind="mlp2x_gelu"))
    with pytest.raises(ConfigError, match="tokenpacker"):
        MlpProjector(PackerConfig(kind="tokenpacker"))


# ---------------------------------------------------------------- MLP baseline


def test_mlp_projector_shape_keys_and_numerics():
    config = tiny_config(2, kind="mlp2x_gelu")
    projector = build_projector(config)
    assert isinstance(projector, MlpProjector) and projector.config is config
    assert {k: tuple(v.shape) for k, v in projector.state_dict().items()} == {
        "0.weight": (24, 16),
        "0.bias": (24,),
        "2.weight": (24, 24),
        "2.bias": (24,),
    }
    gen = torch.Generator().manual_seed(3)
    state = {
        "0.weight": torch.randn(24, 16, generator=gen),
        "0.bias": torch.randn(24, generator=gen),
        "2.weight": torch.randn(24, 24, generator=gen),
        "2.bias": torch.randn(24, generator=gen),
    }
    projector.load_state_dict(state, strict=True)
    features = torch.randn(2, 144, 16, generator=gen)
    with torch.no_grad():
        out = projector(features, multi_level_features=torch.randn(2, 144, 48))
    hidden = F.gelu(features @ state["0.weight"].T + state["0.bias"])
    torch.testing.assert_close(out, hidden @ state["2.weight"].T + state["2.bias"])
    assert out.shape == (2, config.tokens_per_tile, 24)


# ---------------------------------------------------------------- strict loading


def prefixed(state: dict[str, torch.Tensor], prefix: str = PREFIX) -> dict[str, torch.Tensor]:
    return {prefix + k: v.float() for k, v in state.items()}


def test_load_with_published_prefix_ignores_other_keys():
    config = tiny_config(2)
    state = random_state(config)
    checkpoint = prefixed(state) | {
        "model.layers.0.mlp.up_proj.weight": torch.zeros(3, 3),  # outside the prefix
        "model.mm_projector_extra": torch.zeros(1),  # outside too: no dot after the name
    }
    packer = TokenPacker(config)
    load_projector_state(packer, checkpoint, prefix=PREFIX)
    for name, tensor in packer.state_dict().items():
        torch.testing.assert_close(tensor, state[name].float())


def test_load_without_prefix():
    config = tiny_config(2, kind="mlp2x_gelu")
    source, target = build_projector(config), build_projector(config)
    load_projector_state(target, source.state_dict())
    torch.testing.assert_close(target[0].weight, source[0].weight)


def test_load_names_missing_unexpected_and_misshaped_keys():
    config = tiny_config(2)
    checkpoint = prefixed(random_state(config))
    del checkpoint[PREFIX + "clip_attn.in_proj_bias"]
    checkpoint[PREFIX + "resampler.query"] = torch.zeros(4, 4)
    checkpoint[PREFIX + "mlp.0.bias"] = torch.zeros(25)
    packer = TokenPacker(config)
    before = packer.mlp[0].weight.detach().clone()
    with pytest.raises(WeightsError) as info:
        load_projector_state(packer, checkpoint, prefix=PREFIX)
    message = str(info.value)
    assert "missing" in message and PREFIX + "clip_attn.in_proj_bias" in message
    assert "unexpected" in message and PREFIX + "resampler.query" in message
    assert "mis-shaped" in message and PREFIX + "mlp.0.bias (25,) != (24,)" in message
    torch.testing.assert_close(packer.mlp[0].weight, before)  # nothing copied


def test_load_with_a_prefix_that_matches_nothing():
    config = tiny_config(2)
    with pytest.raises(WeightsError, match="model.mm_projector."):
        load_projector_state(
            TokenPacker(config), prefixed(random_state(config), "mm_projector."), prefix=PREFIX
        )
