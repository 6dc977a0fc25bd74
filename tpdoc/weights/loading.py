"""One entry point to load any model tpdoc runs, on the right device and precision.

In: what the user passes as ``--model`` (nothing, an embedded name, a folder, a hub id) and
``--device`` / ``--dtype`` choices. Out: a ready ``DocumentModel`` in eval mode. The
format is detected from ``config.json``; every format goes through the same
``DocumentModel`` code afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tpdoc.errors import UsageError

if TYPE_CHECKING:
    import torch

    from tpdoc.model.document_model import DocumentModel

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA if present, else Apple's MPS, else CPU; an absent device is an error."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available here")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: Apple's MPS backend is not available here")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it, float16 on older GPUs and MPS,
    float32 on CPU (computing in bfloat16 where it can: ``resolve_autocast``)."""
    import torch

    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); without it,
    autocast to bfloat16 emulates it and is slower than float32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_autocast(dtype: str, device: torch.device) -> torch.dtype | None:
    """``auto`` on a CPU with native bfloat16: float32 weights, bfloat16 matmuls and
    convolutions (torch.autocast), as the embedded model trains. Any explicit ``--dtype``,
    or another device, computes in the weights' dtype."""
    import torch

    if dtype == "auto" and device.type == "cpu" and cpu_has_bfloat16():
        return torch.bfloat16
    return None


def load_document_model(
    spec: str | Path | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    max_tiles: int | None = None,
    report: Callable[[str], None] | None = None,
) -> DocumentModel:
    """Load the model ``spec`` names (default: the embedded model): tpdoc's own format or a
    published TokenPacker checkpoint (LLaVA format), told apart by its ``config.json``.

    ``max_tiles`` overrides the model's tile cap (a published HD checkpoint's patch_num);
    ``report`` gets one-line notes while a published model loads (default: stderr).
    """
    from tpdoc.weights.checkpoint import load_model
    from tpdoc.weights.published.format import is_published_folder
    from tpdoc.weights.published.loader import load_published_model
    from tpdoc.weights.registry import resolve_model

    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    folder = resolve_model(spec, weights=True)
    if is_published_folder(folder):
        model = load_published_model(
            folder, device=target, dtype=torch_dtype, max_tiles=max_tiles, report=report
        )
    else:
        model = load_model(folder, device=target, dtype=torch_dtype, max_tiles=max_tiles)
    model.autocast = resolve_autocast(dtype, target)
    return model
