"""A model's identity for the visual-token cache: which weights made these tokens.

In: the model spec the user gave (name or folder) and the loaded model. Out: a string
that changes whenever the weights that produce packed tokens change: the model's name,
its folder (for models from the hub the folder's path holds the revision), and a
fingerprint of its weight files: their SHA-256 when they are small enough to hash on
every start (``HASH_LIMIT``), else their names, sizes and modification times. A model
built in memory (tests, notebooks) is fingerprinted from its vision and projector
tensors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from tpdoc.answering.cache import file_sha256, tensor_sha256
from tpdoc.errors import TpdocError

if TYPE_CHECKING:
    from tpdoc.model.document_model import DocumentModel

HASH_LIMIT = 256 * 1024**2  # weights up to this many bytes are hashed in full
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def model_identity(spec: str | Path | None, model: DocumentModel) -> str:
    """Identity of the model loaded from ``spec`` (with a published checkpoint's separately
    loaded vision tower folder)."""
    from tpdoc.weights.published.tower import separate_tower_folder
    from tpdoc.weights.registry import resolve_model

    try:
        folder = resolve_model(spec).resolve()
        tower = separate_tower_folder(folder)
    except TpdocError:  # a source the registry does not map to a folder
        return module_identity(model)
    identity = f"{model.config.name}|{folder}|{folder_fingerprint(folder)}"
    if tower is not None and not tower.resolve().is_relative_to(folder):
        identity += f"|{tower.resolve()}|{folder_fingerprint(tower)}"
    return identity


def folder_fingerprint(folder: Path) -> str:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix in (*WEIGHT_SUFFIXES, ".json")
    )
    total = sum(p.stat().st_size for p in files)
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0".encode())
        if total <= HASH_LIMIT:
            digest.update(file_sha256(path).encode())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:32]


def module_identity(model: DocumentModel) -> str:
    """Fingerprint of the tensors that make packed tokens, and the config."""
    import json

    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for part in (model.vision, model.projector):
        for name, tensor in sorted(part.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor_sha256(tensor).encode())
    return f"{model.config.name}|memory|{digest.hexdigest()[:32]}"
