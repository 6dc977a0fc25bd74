"""Where a published model's parts go: CPU, one GPU, or GPUs with CPU offload.

In: the (meta) language model, the requested device and dtype, and the bytes to keep free
on the main GPU. Out: a ``Placement`` (the main device and accelerate's device map for the
language model), and a one-line report of where each part went and what its weights take.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tpdoc.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tpdoc.model.document_model import DocumentModel

HEADROOM_BYTES = 2 * 1024**3  # GPU memory kept free for activations and the KV cache


@dataclass(frozen=True)
class Placement:
    """Where the parts go: vision tower, projector and embeddings on ``main``; the language
    model's modules by ``device_map`` (accelerate's format; ``""`` is the whole model)."""

    main: torch.device
    device_map: dict[str, int | str]

    def device_of(self, name: str) -> int | str:
        """The device of the language-model tensor or module ``name`` (longest prefix)."""
        best, device = -1, self.device_map.get("", str(self.main))
        for module, where in self.device_map.items():
            if module and (name == module or name.startswith(module + ".")) and len(module) > best:
                best, device = len(module), where
        return device

    @property
    def dispatched(self) -> bool:
        """More than one device: accelerate's hooks move activations (and offloaded weights)."""
        return len(set(self.device_map.values())) > 1


def plan_placement(
    language_model: nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    *,
    reserve_bytes: int = 0,
    max_memory: dict[int | str, int | str] | None = None,
) -> Placement:
    """CPU / MPS: everything on the device. CUDA: the language model spread by accelerate
    over the GPU(s) (all of them for ``cuda``, one for ``cuda:N``), the rest offloaded to
    CPU memory; ``reserve_bytes`` stay free on the main GPU for the tower, projector,
    activations and KV cache. A model that fits nowhere is an error, never disk offload."""
    import torch

    if device.type != "cuda":
        return Placement(device, {"": str(device)})
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_max_memory

    budget = dict(get_max_memory(max_memory))
    if device.index is not None:
        budget = {k: v for k, v in budget.items() if k in (device.index, "cpu")}
    gpus = sorted(k for k in budget if isinstance(k, int))
    if not gpus:
        raise ModelError(f"--device {device}: no GPU memory to place the model on")
    budget[gpus[0]] = max(0, int(budget[gpus[0]]) - reserve_bytes)
    device_map = infer_auto_device_map(
        language_model,
        max_memory=budget,
        no_split_module_classes=list(getattr(language_model, "_no_split_modules", None) or []),
        dtype=dtype,
    )
    if "disk" in device_map.values():
        raise ModelError(
            f"the language model does not fit in GPU and CPU memory "
            f"({_gib(weight_bytes(language_model, dtype))} GiB of {dtype} weights); free memory, "
            "or use a smaller checkpoint"
        )
    return Placement(torch.device("cuda", gpus[0]), device_map)


def weight_bytes(module: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of ``module``'s parameters, as stored or, given ``dtype``, once cast to it."""
    return sum(
        p.numel() * (dtype.itemsize if dtype is not None else p.element_size())
        for p in module.parameters()
    )


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f}"


def _size(n: int) -> str:
    """Bytes for people: GiB from 1 GiB on, MiB below, KiB for tiny test models."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n / 1024:.1f} KiB"


def describe_placement(model: DocumentModel, placement: Placement) -> str:
    """One line: where each part is and how much memory its weights take."""
    lm = model.language_model
    per_device: dict[str, int] = defaultdict(int)  # language-model weight bytes by device
    layers: dict[str, int] = defaultdict(int)  # decoder layers by device
    for _, p in lm.named_parameters():
        per_device[str(p.device)] += p.numel() * p.element_size()
    for layer in lm.model.layers:
        layers[str(next(layer.parameters()).device)] += 1
    offloaded = placement.dispatched and placement.main.type != "cpu"
    spread = ", ".join(
        f"{layers[d]} of {len(lm.model.layers)} layers on {d}"
        f"{' (offloaded)' if d == 'cpu' and offloaded else ''} ({_size(n)})"
        for d, n in per_device.items()
    )
    main = str(next(model.vision.parameters()).device)
    total = weight_bytes(model.vision) + weight_bytes(model.projector) + weight_bytes(lm)
    return (
        f"{model.config.name}: vision tower on {main} ({_size(weight_bytes(model.vision))}), "
        f"projector on {main} ({_size(weight_bytes(model.projector))}), language model: {spread}; "
        f"{_size(total)} of {str(model.dtype).removeprefix('torch.')} weights"
    )
