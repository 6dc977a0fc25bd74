"""A published checkpoint's weight files, read safely and lazily.

In: a folder holding ``model.safetensors`` or ``pytorch_model.bin``, single or sharded with
an index. Out: ``WeightFiles`` (which files, which shards are missing), the tensor names
(from the index when there is one) and a ``CheckpointReader`` giving every name and shape
from the file headers first and the tensors on demand. ``.bin`` files are read
weights-only, so nothing is unpickled.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.errors import ModelFormatError, WeightsError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class WeightFiles:
    """A folder's weight files: one format, every shard its index names."""

    folder: Path
    kind: str  # "safetensors" | "bin"
    files: tuple[Path, ...]  # present, in order
    missing: tuple[str, ...]  # named by the index but absent (an incomplete download)


WEIGHT_LAYOUTS = (
    ("safetensors", "model.safetensors", "model.safetensors.index.json"),
    ("bin", "pytorch_model.bin", "pytorch_model.bin.index.json"),
)


def find_weight_files(folder: Path) -> WeightFiles | None:
    """Safetensors (single or sharded) first, then ``pytorch_model*.bin``; None if neither."""
    folder = Path(folder)
    for kind, single, index in WEIGHT_LAYOUTS:
        if (folder / index).is_file():
            names = _index_files(folder / index)
            present = tuple(folder / n for n in names if (folder / n).is_file())
            absent = tuple(n for n in names if not (folder / n).is_file())
            return WeightFiles(folder, kind, present, absent)
        if (folder / single).is_file():
            return WeightFiles(folder, kind, (folder / single,), ())
    return None


def checkpoint_keys(weights: WeightFiles) -> list[str]:
    """Tensor names: from the shard index when there is one, else from the file itself."""
    for kind, _, index in WEIGHT_LAYOUTS:
        if kind == weights.kind and (weights.folder / index).is_file():
            return list(_read_index(weights.folder / index))
    return list(CheckpointReader(weights).shapes)


def _read_index(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"{index}: unreadable shard index: {exc}") from exc
    return weight_map


def _index_files(index: Path) -> list[str]:
    names = sorted(set(map(str, _read_index(index).values())))
    bad = [n for n in names if not isinstance(n, str) or Path(n).name != n]
    if bad:
        raise ModelFormatError(f"{index}: shard names must be plain file names, got {bad[:3]}")
    return names


class CheckpointReader:
    """Names and shapes of every tensor first (file headers only), tensors on demand.

    Safetensors are opened lazily; ``.bin`` shards are read with
    ``torch.load(weights_only=True, mmap=True)``, which refuses anything but tensors and
    plain containers, so nothing is unpickled.
    """

    def __init__(self, weights: WeightFiles) -> None:
        self.weights = weights
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._where: dict[str, Path] = {}
        self._bin: dict[Path, dict[str, torch.Tensor]] = {}
        for path in weights.files:
            for key, shape in self._scan(path):
                if key in self._where:
                    raise WeightsError(f"{path}: key {key} is also in {self._where[key].name}")
                self._where[key], self.shapes[key] = path, shape

    def _scan(self, path: Path) -> Iterator[tuple[str, tuple[int, ...]]]:
        if self.weights.kind == "bin":
            state = self._bin[path] = _load_bin(path)
            yield from ((k, tuple(v.shape)) for k, v in state.items())
            return
        from safetensors import safe_open

        from tpdoc.weights.tensors import reading_safetensors  # imports torch

        with reading_safetensors(path), safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            yield from ((k, tuple(f.get_slice(k).get_shape())) for k in keys)

    def meta(self, keys: Iterable[str]) -> dict[str, Any]:
        """Shape-only stand-ins (meta tensors), for ``check_state``."""
        import torch

        return {k: torch.empty(self.shapes[k], device="meta") for k in keys}

    def tensors(self, keys: Iterable[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """``(key, tensor)`` on the CPU, one file open at a time."""
        by_file: dict[Path, list[str]] = defaultdict(list)
        for key in keys:
            by_file[self._where[key]].append(key)
        for path, names in by_file.items():
            if self.weights.kind == "bin":
                yield from ((k, self._bin[path][k]) for k in names)
                continue
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                yield from ((k, f.get_tensor(k)) for k in names)


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    """A ``.bin`` state dict, weights-only (tensors and containers, never arbitrary objects)."""
    import pickle

    import torch

    def load(mmap: bool) -> Any:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            state = load(mmap=True)
        except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            state = load(mmap=False)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: refused: the file holds more than tensors, and .bin weights are read "
            f"weights-only ({str(exc).splitlines()[0]}); use a safetensors copy"
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable .bin weights: {exc}") from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path}: not a state dict of named tensors")
    return state
