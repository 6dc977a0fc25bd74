"""Building a projector from its config and loading its weights.

In: a ``PackerConfig`` (its ``kind`` names TokenPacker, LLaVA's MLP or an ablation
baseline); for loading, a state dict and the key prefix it sits under. Out: the freshly
initialised ``nn.Module`` (``[B, N, C]`` features -> ``[B, Q, D]`` tokens), or that module
with the weights copied in after every key and shape was checked.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from tpdoc.errors import WeightsError
from tpdoc.model.baselines import AvgPoolProjector, ResamplerProjector
from tpdoc.model.packer import MlpProjector, PackerConfig, TokenPacker
from tpdoc.weights.tensors import check_state

PROJECTORS: dict[str, type[nn.Module]] = {
    "tokenpacker": TokenPacker,
    "mlp2x_gelu": MlpProjector,
    "avgpool": AvgPoolProjector,
    "resampler": ResamplerProjector,
}


def build_projector(config: PackerConfig) -> nn.Module:
    """The projector ``config.kind`` names, freshly initialised."""
    return PROJECTORS[config.kind](config)


def load_projector_state(module: nn.Module, state: Mapping[str, Tensor], prefix: str = "") -> None:
    """Strictly load the keys of ``state`` under ``prefix`` (e.g. ``"model.mm_projector."``).

    Keys outside ``prefix`` are ignored. Every key and shape is checked before anything is
    copied; a ``WeightsError`` names missing, unexpected and mis-shaped keys (full names,
    with shapes). Tensors are cast to the module's dtype.
    """
    own = module.state_dict()
    given = {k: v for k, v in state.items() if k.startswith(prefix)}
    source = f"projector weights under prefix {prefix!r}" if prefix else "projector weights"
    if not given:
        sample = ", ".join(sorted(state)[:3]) or "none"
        raise WeightsError(
            f"{source}: no keys start with {prefix!r} ({len(state)} keys given, e.g. {sample}); "
            "check the prefix"
        )
    check_state({prefix + k: v.shape for k, v in own.items()}, given, source)
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(given[prefix + name])
