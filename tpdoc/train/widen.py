"""Widening a trained TokenPacker and its read-out without changing what they compute.

In: stage R's tensors (``projector.*`` of a TokenPacker ``E`` wide in heads of ``h``,
packing tokens ``D`` wide, and ``pointer.readout.*``) and the wider packer's config, ``E'``
and ``D'`` whole multiples of them. Out: tensors of the wider shapes, same function.

The Net2Net recipe (arXiv 1511.05641): every unit becomes ``k`` copies. A layer that writes
widened units repeats its rows; a layer that reads them splits each column among the
copies. LayerNorm sees each value ``k`` times, so its mean and variance stay. An attention
head becomes ``k`` whole heads (head width unchanged, so the softmax scale stays). The split
columns get noise that sums to zero across the copies: same outputs, but the copies get
different gradients and can learn different things.
"""

from __future__ import annotations

import torch

from tpdoc.errors import ConfigError
from tpdoc.model.packer import PackerConfig

NOISE = 0.02  # of each split column's own scale


def _copies(old: int, k: int, block: int = 1) -> torch.Tensor:
    """New index -> old index: blocks of ``block`` units, each block repeated ``k`` times."""
    new = torch.arange(old * k)
    return (new // (block * k)) * block + new % block


def _rows(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return w[m].clone()


def _columns(w: torch.Tensor, m: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Input columns read from widened units ``m``: each old column split over its ``k``
    copies, with zero-sum noise across the copies."""
    split = w[:, m] / k  # [out, in*k]
    if k == 1:
        return split.clone()
    noise = torch.randn(split.shape, generator=gen) * (NOISE * split.std())
    mean = torch.zeros_like(w).index_add_(1, m, noise) / k  # [out, in]: each copies' mean
    return split + noise - mean[:, m]  # zero sum over each old column's copies


def widen_packer(state: dict[str, torch.Tensor], old: PackerConfig, new: PackerConfig,
                 seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """``state``'s ``projector.*`` and ``pointer.readout.hidden.*`` tensors for the
    ``new`` packer's widths (the rest as they are)."""
    head = old.embed_dim // old.heads
    ke, kd = new.embed_dim // old.embed_dim, new.llm_dim // old.llm_dim
    if (
        new.embed_dim != ke * old.embed_dim
        or new.llm_dim != kd * old.llm_dim
        or new.embed_dim // new.heads != head
    ):
        raise ConfigError(
            f"a packer {old.embed_dim},{old.llm_dim} widens to whole multiples with heads "
            f"{head} wide, not to {new.embed_dim},{new.llm_dim}"
        )
    gen = torch.Generator().manual_seed(seed)
    e = _copies(old.embed_dim, ke, head)  # attention units, whole heads repeated
    eh = _copies(old.embed_dim, ke)  # the hidden units of the key and value MLPs
    d = _copies(old.llm_dim, kd)
    out = dict(state)
    p = "projector."

    def set_(name: str, tensor: torch.Tensor) -> None:
        out[p + name] = tensor.to(state[p + name].dtype)

    def get(name: str) -> torch.Tensor:
        return state[p + name].float()

    set_("q_proj_1.weight", _rows(get("q_proj_1.weight"), e))
    for kv in ("k_proj_1", "v_proj_1"):
        set_(f"{kv}.0.weight", _rows(get(f"{kv}.0.weight"), eh))
        set_(f"{kv}.0.bias", _rows(get(f"{kv}.0.bias"), eh))
        set_(f"{kv}.2.weight", _rows(_columns(get(f"{kv}.2.weight"), eh, ke, gen), e))
        set_(f"{kv}.2.bias", _rows(get(f"{kv}.2.bias"), e))
    for ln in ("ln_q_1", "ln_k_1", "ln_v_1"):
        set_(f"{ln}.weight", _rows(get(f"{ln}.weight"), e))
        set_(f"{ln}.bias", _rows(get(f"{ln}.bias"), e))
    if p + "region_pos" in state:
        set_("region_pos", get("region_pos")[:, e].clone())
    w, b = get("clip_attn.in_proj_weight"), get("clip_attn.in_proj_bias")  # [3E, E]: q, k, v
    parts = [
        _rows(_columns(w[i * old.embed_dim : (i + 1) * old.embed_dim], e, ke, gen), e)
        for i in range(3)
    ]
    set_("clip_attn.in_proj_weight", torch.cat(parts))
    set_("clip_attn.in_proj_bias", torch.cat([_rows(part, e) for part in b.chunk(3)]))
    out_proj = get("clip_attn.out_proj.weight")
    set_("clip_attn.out_proj.weight", _rows(_columns(out_proj, e, ke, gen), e))
    set_("clip_attn.out_proj.bias", _rows(get("clip_attn.out_proj.bias"), e))
    set_("mlp.0.weight", _rows(_columns(get("mlp.0.weight"), e, ke, gen), d))
    set_("mlp.0.bias", _rows(get("mlp.0.bias"), d))
    set_("mlp.2.weight", _rows(_columns(get("mlp.2.weight"), d, kd, gen), d))
    set_("mlp.2.bias", _rows(get("mlp.2.bias"), d))
    r = "pointer.readout.hidden."
    if r + "0.weight" in state:
        dtype = state[r + "0.weight"].dtype
        out[r + "0.weight"] = _rows(state[r + "0.weight"].float(), d).to(dtype)
        out[r + "0.bias"] = _rows(state[r + "0.bias"].float(), d).to(dtype)
        out[r + "1.weight"] = _columns(state[r + "1.weight"].float(), d, kd, gen).to(dtype)
    return out
