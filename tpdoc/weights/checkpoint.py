"""tpdoc's own model folder: save and load a ``DocumentModel``.

In: a model (to save) or a folder / embedded name (to load). Out: a folder holding
``config.json`` (``ModelConfig``), ``model.safetensors`` (keys ``vision.*``,
``projector.*``, ``language_model.*``) and the tokenizer files, or the model built from
it with every weight checked (``tpdoc.weights.tensors``). Loading also reads the weights as
safetensors shards with their ``model.safetensors.index.json`` (found as for published
checkpoints, ``tpdoc.weights.files``); never ``.bin`` files.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tpdoc.errors import ModelFormatError
from tpdoc.model.document_model import DocumentModel
from tpdoc.weights.registry import load_config, resolve_model
from tpdoc.weights.tensors import load_strict, read_safetensors, state_for_saving

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def save_model(model: DocumentModel, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` to ``folder``; ``dtype`` (e.g. float16) shrinks the stored weights."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = state_for_saving(model)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "tpdoc_model": model.config.name})
    tmp.replace(folder / WEIGHTS_FILE)
    model.config.save(folder)
    model.tokenizer.save_pretrained(str(folder))
    if model.pointer is not None and model.pointer.words is not None:
        model.pointer.words.save_tokenizer(folder)
    return folder


def load_tokenizer(folder: Path):
    from transformers import PreTrainedTokenizerFast

    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelFormatError(f"{folder}: no {TOKENIZER_FILE}")
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def weight_files(folder: Path) -> tuple[Path, ...]:
    """The safetensors files holding a tpdoc folder's weights: ``model.safetensors``, or
    every shard its ``model.safetensors.index.json`` names."""
    from tpdoc.weights.files import find_weight_files

    found = find_weight_files(folder)
    if found is None or found.kind != "safetensors":
        raise ModelFormatError(
            f"{folder}: no {WEIGHTS_FILE} nor safetensors shards with their index (weights not "
            "present; tpdoc's own format is read from safetensors only, never .bin)"
        )
    if found.missing:
        raise ModelFormatError(
            f"{folder}: incomplete weights, shards named by the index are missing: "
            f"{', '.join(found.missing)}"
        )
    return found.files


def load_model(
    spec: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    max_tiles: int | None = None,
) -> DocumentModel:
    """Build the model a tpdoc folder describes and load its weights strictly
    (``max_tiles`` overrides its tile cap)."""
    folder = resolve_model(spec)
    config = load_config(folder, max_tiles=max_tiles)
    files = weight_files(folder)
    tokenizer = load_tokenizer(folder)
    model = DocumentModel.from_config(config, tokenizer)
    if model.pointer is not None and model.pointer.words is not None:
        model.pointer.words.load_tokenizer(folder)
    source = str(files[0]) if len(files) == 1 else f"{folder} ({len(files)} safetensors shards)"
    load_strict(model, read_safetensors(files), source)
    return model.to(device=device, dtype=dtype).eval()
