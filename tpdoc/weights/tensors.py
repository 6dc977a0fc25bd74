"""Strict, safe weight loading shared by every model format.

In: a module and a state dict (or safetensors files). Out: the module loaded, or a
``WeightsError`` naming every missing, unexpected and mis-shaped key. Weights are read
with safetensors; nothing is ever unpickled here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from tpdoc.errors import WeightsError

MAX_LISTED_KEYS = 8  # keep error messages one readable line


def tied_aliases(module: nn.Module, *, by_identity: bool = False) -> set[str]:
    """State-dict names that share storage with an earlier name (tied embeddings).

    ``by_identity`` compares the tensor objects instead of their storage: tying shares the
    parameter itself, and it works on meta tensors too, whose storage pointers are all 0.
    """
    seen: dict[int, str] = {}
    aliases = set()
    for name, tensor in module.state_dict(keep_vars=True).items():
        key = id(tensor) if by_identity else tensor.data_ptr()
        if key in seen and tensor.numel():
            aliases.add(name)
        else:
            seen[key] = name
    return aliases


def _listing(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return shown + (f" (+{more} more)" if more > 0 else "")


def check_state(
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    given: Mapping[str, torch.Tensor],
    source: str,
    optional: Iterable[str] = (),
) -> None:
    """Raise ``WeightsError`` unless ``given`` has exactly the ``expected`` keys and shapes.

    ``optional`` keys (tied aliases) may be absent.
    """
    optional = set(optional)
    missing = set(expected) - set(given) - optional
    unexpected = set(given) - set(expected)
    misshaped = [
        f"{k} {tuple(given[k].shape)} != {tuple(expected[k])}"
        for k in sorted(set(expected) & set(given))
        if tuple(given[k].shape) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_listing(misshaped)}")
    if problems:
        raise WeightsError(f"{source}: weights do not match the model: " + "; ".join(problems))


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Check ``state`` against ``module`` key by key, then copy it in (dtype of the module)."""
    own = module.state_dict()
    aliases = tied_aliases(module)
    check_state({k: v.shape for k, v in own.items()}, state, source, optional=aliases)
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)


@contextmanager
def reading_safetensors(path: Path) -> Iterator[None]:
    """Turn any failure to read the safetensors file ``path`` into one ``WeightsError``."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable safetensors file: {exc}") from exc


def read_safetensors(paths: Iterable[Path]) -> dict[str, torch.Tensor]:
    """Read and merge safetensors files; a key in two files is an error."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for path in paths:
        with reading_safetensors(path):
            part = load_file(str(path))
        clash = set(part) & set(state)
        if clash:
            raise WeightsError(f"{path}: keys already read from another shard: {_listing(clash)}")
        state.update(part)
    return state


def state_for_saving(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state without tied aliases, contiguous, ready for safetensors."""
    aliases = tied_aliases(module)
    return {k: v.detach().contiguous() for k, v in module.state_dict().items() if k not in aliases}
