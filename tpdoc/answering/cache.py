"""The visual-token cache: packed tokens of a page on disk, so a second question skips
rendering and the vision tower.

In: a ``CacheKey`` (the document's content hash, the page, every render and tiling
setting that changes the pixels, the packer scale, the model's identity and dtype) and
the packed views ``[V, Q, D]``. Out: the same tensor on a later ``get``, or ``None``.

One safetensors file per entry under ``<root>/visual-tokens-v1/``, named by the key's
digest; its metadata holds the full key and a SHA-256 of the tensor bytes, so a
truncated, corrupt or foreign file (another key, another shape) is detected, deleted and
counts as a miss; it never raises and never returns another page's tokens. Writes go to
a temporary file that is renamed into place, so two processes can share the cache.
Least recently used entries (by modification time, touched on every hit) are evicted
once the entries exceed ``max_bytes``. A cache does not walk its folder on every write: it
walks it on its first write and then every ``RESCAN_PUTS`` writes (to see what other
processes wrote or removed), and in between keeps the entries it knows in least recently
used order, with their sizes, adding what it writes and uses; before removing one it checks
that no other process has used it since.

``file_sha256`` and ``tensor_sha256`` are the content hashes tpdoc uses everywhere (cache
keys and entries, model identities).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.errors import TpdocError, UsageError
from tpdoc.io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

    from tpdoc.answering.planning import PagePlan
    from tpdoc.documents.tiling import TilingConfig

CACHE_ENV = "TPDOC_CACHE"  # the cache's root folder
CACHE_MAX_ENV = "TPDOC_CACHE_MAX"  # its size cap, e.g. "2G", "500M", "1000000"
DEFAULT_MAX_BYTES = 2 * 1024**3
ENTRY_DIR = "visual-tokens-v1"  # bump the version when the entry format changes
ENTRY_SUFFIX = ".safetensors"
TENSOR_NAME = "packed"
FORMAT_TAG = "tpdoc-visual-tokens-1"
STALE_TEMP_SECONDS = 3600  # temporary files older than this belong to a dead writer
HASH_CHUNK = 1 << 20
RESCAN_PUTS = 100  # writes after which the folder is walked again (for other processes)
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class CacheKey:
    """Everything that decides a page's packed tokens."""

    file_sha256: str
    page: int
    width: int  # the nominal size the grid was chosen for
    height: int
    grid: tuple[int, int]
    fit: tuple[int, int]  # the size the page was rendered/resized to in the canvas
    mode: str
    tile_size: int
    dpi: float | None  # None: PDFs rasterised at the plan's size
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    scale: int
    model: str  # the model's identity: name, path or revision, weights fingerprint
    dtype: str

    @classmethod
    def for_page(
        cls, file_hash: str, plan: PagePlan, tiling: TilingConfig, dpi: float | None,
        model: str, dtype: Any,
    ) -> CacheKey:  # fmt: skip
        """The key of a page planned as ``plan`` from the file ``file_hash`` names."""
        return cls(
            file_sha256=file_hash, page=plan.page, width=plan.plan.width,
            height=plan.plan.height, grid=plan.plan.grid, fit=plan.plan.fit,
            mode=plan.plan.mode, tile_size=tiling.tile_size, dpi=dpi,
            image_mean=tiling.image_mean, image_std=tiling.image_std, scale=plan.scale,
            model=model, dtype=str(dtype),
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()


@dataclass(frozen=True)
class CacheInfo:
    root: Path
    entries: int
    bytes: int
    max_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "entries": self.entries,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
        }


def default_cache_root() -> Path:
    """``TPDOC_CACHE``, else the platform's user cache folder + ``tpdoc``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "tpdoc" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "tpdoc"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "tpdoc"


def parse_size(text: str) -> int:
    """``'2G'``, ``'500MB'``, ``'1.5GiB'``, ``'1000'`` -> bytes (binary units)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise UsageError(f"{CACHE_MAX_ENV}: {text!r} is not a size like 500M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def default_max_bytes() -> int:
    raw = os.environ.get(CACHE_MAX_ENV)
    return DEFAULT_MAX_BYTES if not raw else parse_size(raw)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, read in chunks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes in memory order (hex); any device, any dtype."""
    import torch

    raw = tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy()
    return hashlib.sha256(raw).hexdigest()


class VisualTokenCache:
    """Packed visual tokens by ``CacheKey``; every failure is a miss, never an error."""

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self.folder = self.root / ENTRY_DIR
        self.hits = 0
        self.misses = 0
        self.write_error: str | None = None  # the first failed write, for a warning
        # Entries as of the last walk of the folder plus this cache's writes and hits since:
        # path -> (size, last use), least recently used first (None: no walk yet).
        self._known: OrderedDict[Path, tuple[int, float]] | None = None
        self._known_bytes = 0
        self._puts_since_walk = 0

    def path(self, key: CacheKey) -> Path:
        digest = key.digest
        return self.folder / digest[:2] / f"{digest}{ENTRY_SUFFIX}"

    def get(self, key: CacheKey, shape: tuple[int, ...] | None = None) -> torch.Tensor | None:
        """The cached tensor for ``key`` (of ``shape`` if given), or ``None``."""
        path = self.path(key)
        tensor = _read_entry(path, key, shape)
        if tensor is None:
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):  # removed by another process meanwhile
            os.utime(path)  # least recently used = oldest modification time
        if self._known is not None and path in self._known:
            self._known[path] = (self._known[path][0], time.time())
            self._known.move_to_end(path)
        return tensor

    def put(self, key: CacheKey, tensor: torch.Tensor) -> None:
        """Store ``tensor`` atomically; a failed write is remembered, not raised."""
        from safetensors.torch import save

        data = tensor.detach().to("cpu").contiguous()
        metadata = {"format": FORMAT_TAG, "key": key.to_json(), "sha256": tensor_sha256(data)}
        blob = save({TENSOR_NAME: data}, metadata=metadata)
        path = self.path(key)
        try:
            atomic_write_bytes(path, blob)
            self._wrote(path, len(blob))
        except (OSError, TpdocError) as exc:
            self.write_error = self.write_error or str(exc)

    def _wrote(self, path: Path, size: int) -> None:
        """Note a written entry and keep the cache within its cap; the folder is walked
        only on the first write and every ``RESCAN_PUTS`` writes."""
        self._puts_since_walk += 1
        if self._known is None or self._puts_since_walk >= RESCAN_PUTS:
            self.evict()
            return
        old = self._known.pop(path, None)
        self._known_bytes += size - (old[0] if old is not None else 0)
        self._known[path] = (size, time.time())
        self._trim()

    def entries(self) -> list[tuple[Path, os.stat_result]]:
        """Every entry with its stat, oldest first; temporary files left by a dead writer
        are removed on the way."""
        found = []
        if not self.folder.is_dir():
            return found
        now = time.time()
        for sub in self.folder.iterdir():
            if not sub.is_dir():
                continue
            for item in sub.iterdir():
                try:
                    stat = item.stat()
                except OSError:
                    continue  # removed by another process meanwhile
                if item.name.endswith(ENTRY_SUFFIX) and not item.name.startswith("."):
                    found.append((item, stat))
                elif now - stat.st_mtime > STALE_TEMP_SECONDS:
                    item.unlink(missing_ok=True)
        found.sort(key=lambda entry: entry[1].st_mtime)
        return found

    def evict(self) -> int:
        """Walk the folder, then remove the least recently used entries until the cache
        fits; how many went."""
        entries = self.entries()
        self._known = OrderedDict((path, (stat.st_size, stat.st_mtime)) for path, stat in entries)
        self._known_bytes = sum(stat.st_size for _, stat in entries)
        self._puts_since_walk = 0
        return self._trim()

    def _trim(self) -> int:
        """Remove known entries, least recently used first, until they fit the cap; one
        that another process has used since it was noted is kept, as recently used."""
        removed = 0
        while self._known and self._known_bytes > self.max_bytes:
            path, (size, used) = next(iter(self._known.items()))
            try:
                modified: float | None = path.stat().st_mtime
            except OSError:
                modified = None  # removed meanwhile (another process, a damaged entry)
            if modified is not None and modified > used:
                self._known[path] = (size, modified)
                self._known.move_to_end(path)
                continue
            del self._known[path]
            self._known_bytes -= size
            if modified is not None:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def info(self) -> CacheInfo:
        entries = self.entries()
        size = sum(stat.st_size for _, stat in entries)
        return CacheInfo(self.root, len(entries), size, self.max_bytes)

    def clear(self) -> int:
        """Delete every entry; how many there were."""
        entries = self.entries()
        for path, _ in entries:
            path.unlink(missing_ok=True)
        self._known = None  # walked again on the next write
        return len(entries)


def _read_entry(path: Path, key: CacheKey, shape: tuple[int, ...] | None) -> torch.Tensor | None:
    """The entry's tensor if the file is whole, is ours, is for ``key`` and has ``shape``;
    otherwise ``None``, and a damaged or foreign file is deleted so it gets rebuilt."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except OSError:
        return None  # absent (the usual miss), or removed by another process meanwhile
    try:
        tensors = load(data)
        metadata = _metadata(data)
        tensor = tensors[TENSOR_NAME]
        valid = (
            set(tensors) == {TENSOR_NAME}
            and metadata.get("format") == FORMAT_TAG
            and metadata.get("key") == key.to_json()
            and (shape is None or tuple(tensor.shape) == tuple(shape))
            and metadata.get("sha256") == tensor_sha256(tensor)
        )
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError):
        valid = False
    if not valid:
        path.unlink(missing_ok=True)
        return None
    return tensor


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file held in memory."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return header.get("__metadata__") or {}
