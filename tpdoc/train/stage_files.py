"""The files a training stage keeps in its ``OUT`` folder, written and read back.

In: modules or named parameters, metrics, the folder. Out: weights as safetensors files
(written atomically: an interrupted run never leaves half a file), ``log.jsonl`` and
``progress.json`` (the step a ``--resume`` starts from), and a tower loaded strictly from
a saved file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from tpdoc.io import append_json_line, atomic_write_text

PROGRESS_FILE = "progress.json"


def _write_safetensors(state: dict[str, torch.Tensor], target: Path,
                       metadata: dict[str, str] | None = None) -> None:  # fmt: skip
    from safetensors.torch import save_file

    tmp = target.with_name(target.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(target)


def save_module(module: torch.nn.Module, target: Path, prefix: str = "") -> None:
    """A module's weights as fp32 safetensors (keys under ``prefix``), written atomically."""
    state = {
        f"{prefix}{k}": v.detach().float().contiguous() for k, v in module.state_dict().items()
    }
    _write_safetensors(state, target)


def save_parameters(params: dict[str, torch.nn.Parameter], path: Path,
                    metadata: dict[str, str] | None = None) -> None:  # fmt: skip
    """The named tensors, in their own dtype, as one safetensors file written atomically
    (stages R and P), with ``metadata`` in its header."""
    _write_safetensors({k: v.detach().contiguous() for k, v in params.items()}, path, metadata)


def file_metadata(path: Path) -> dict[str, str]:
    """The string metadata in a safetensors file's header (empty if none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_tower(tower: torch.nn.Module, path: Path) -> None:
    """Strictly load ``vision.*`` weights (a saved tower, or a tpdoc model's file)."""
    from tpdoc.weights.tensors import load_strict, read_safetensors

    state = {
        k[len("vision.") :]: v
        for k, v in read_safetensors([path]).items()
        if k.startswith("vision.")
    }
    load_strict(tower, state, str(path))


def saved_step(out: Path) -> int:
    """The last step ``out`` holds a saved state of (``progress.json``), 0 if none."""
    progress = out / PROGRESS_FILE
    return json.loads(progress.read_text())["step"] if progress.is_file() else 0


def save_progress(out: Path, step: int) -> None:
    """``step`` as the one to resume from: written last, once everything it needs is saved."""
    atomic_write_text(out / PROGRESS_FILE, json.dumps({"step": step}))


def record_step(out: Path, metrics: dict[str, float], save: Callable[[], None]) -> None:
    """An evaluated step (stages R and P): its metrics logged (``log.jsonl`` and stdout),
    the weights saved by ``save()``, and the step as the one to resume from."""
    append_json_line(out / "log.jsonl", metrics)
    print(json.dumps(metrics), flush=True)
    save()
    save_progress(out, metrics["step"])
