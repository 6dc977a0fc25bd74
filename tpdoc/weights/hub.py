"""Hugging Face Hub ids -> model folders in huggingface_hub's local cache.

In: a repo id (``org/name``) and what is needed from it: its ``config.json`` alone (``tpdoc
inspect``) or everything to load it (config, tokenizer, weights). Out: the snapshot folder
in the local Hugging Face cache that holds those files. Online, missing files are
downloaded into that cache first, with huggingface_hub's own progress bars on stderr;
offline (``HF_HUB_OFFLINE=1``) or without network, a model that is not cached is a
one-line ``ModelNotFoundError`` that says what to download and how; no network is found
out by one short connection attempt before any download, not by huggingface_hub's retries.

The cache location and the offline switch are read from the environment on every call
(huggingface_hub reads them once, at import), so tests and long-lived processes can point
them elsewhere.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tpdoc.errors import ModelError, ModelNotFoundError

Report = Callable[[str], None]

CONFIG_FILE = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
# Besides weights, what a model folder may need: configs, tokenizer, image preprocessing.
SMALL_FILES = (
    CONFIG_FILE,
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
SAFETENSORS_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
BIN_PATTERNS = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRUE = {"1", "true", "yes", "on"}
# Before downloading, one TCP connection to the Hub (or to the proxy the environment names)
# must open within this; without it huggingface_hub retries for about 23 s (1+2+4+8+8).
PROBE_TIMEOUT_S = 3.0


def stderr_report(message: str) -> None:
    """Default ``Report``: one line on stderr (results stay alone on stdout)."""
    print(message, file=sys.stderr, flush=True)


def looks_like_hub_id(spec: str) -> bool:
    """``org/name`` with the characters the Hub allows (no ``..``, no leading ``.``/``/``)."""
    return bool(_REPO_ID.match(spec)) and ".." not in spec and not spec.endswith(".git")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as the environment says now."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_cache_dir() -> Path:
    """Where huggingface_hub caches models, following the environment as it is now."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def repo_id_from_cache_path(folder: Path) -> str | None:
    """``.../models--org--name/snapshots/<rev>`` -> ``org/name`` (None elsewhere)."""
    folder = Path(folder)
    repo = folder.parent.parent.name
    if folder.parent.name != "snapshots" or not repo.startswith("models--"):
        return None
    return repo[len("models--") :].replace("--", "/", 1)


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id``'s main revision, without any network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, cache_dir=hub_cache_dir(), local_files_only=True)
    except (LocalEntryNotFoundError, _incomplete_snapshot_error()):
        return None
    return Path(folder)


def missing_files(folder: Path | None, *, weights: bool, tokenizer: bool = True) -> list[str]:
    """What ``folder`` lacks for its purpose: the config; with ``weights`` also the weight
    files (every shard its index lists) and, with ``tokenizer``, a tokenizer."""
    if folder is None:
        return [CONFIG_FILE]
    missing = [] if (folder / CONFIG_FILE).is_file() else [CONFIG_FILE]
    if not weights:
        return missing
    from tpdoc.weights.files import find_weight_files

    found = find_weight_files(folder)
    if found is None:
        missing.append("weights (model.safetensors or pytorch_model.bin, or their shards)")
    else:
        missing += list(found.missing)
    if tokenizer and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    return missing


def cache_status(repo_id: str, *, tokenizer: bool = True) -> str:
    """``"cached"`` (ready to load offline), ``"partial"`` or ``"absent"``."""
    folder = cached_snapshot(repo_id)
    if folder is None:
        return "absent"
    return "partial" if missing_files(folder, weights=True, tokenizer=tokenizer) else "cached"


def _incomplete_snapshot_error() -> type[Exception]:
    try:
        from huggingface_hub.errors import IncompleteSnapshotError
    except ImportError:  # pragma: no cover - older huggingface_hub
        return LookupError
    return IncompleteSnapshotError


def _how_to_get(repo_id: str) -> str:
    return (
        f"run `tpdoc pull {repo_id}` with network access (HF_HUB_OFFLINE unset), or download "
        f"the model folder elsewhere and pass its path to --model"
    )


def _not_available(repo_id: str, folder: Path | None, missing: list[str], why: str) -> str:
    """One line: what is (not) in the cache, why it was not fetched, how to get it."""
    if folder is None:
        what = f"not in the Hugging Face cache ({hub_cache_dir()})"
    else:
        what = f"incompletely cached in {folder} (missing {', '.join(missing)})"
    how = _how_to_get(repo_id)
    return f"{repo_id}: no such local folder, and the hub model is {what}; {why}; {how}"


def hub_model_folder(
    repo_id: str,
    *,
    weights: bool = False,
    tokenizer: bool = True,
    report: Report | None = None,
) -> Path:
    """The cached snapshot folder of ``repo_id`` with what is needed, downloading if online.

    ``weights=False`` needs ``config.json`` only (one small file is fetched when missing);
    ``weights=True`` needs config, weights and (with ``tokenizer``) a tokenizer.
    """
    folder = cached_snapshot(repo_id)
    missing = missing_files(folder, weights=weights, tokenizer=tokenizer)
    if not missing:
        return folder  # type: ignore[return-value]  # missing is empty only with a folder
    if hub_offline():
        raise ModelNotFoundError(
            _not_available(repo_id, folder, missing, "HF_HUB_OFFLINE=1 forbids downloading")
        )
    folder = _download(repo_id, weights, report or stderr_report)
    still = missing_files(folder, weights=weights, tokenizer=tokenizer)
    if still:
        raise ModelNotFoundError(
            f"{repo_id}: the hub repository has no {', '.join(still)}; it is not a model "
            "tpdoc can load"
        )
    return folder


def _download(repo_id: str, weights: bool, report: Report) -> Path:
    """Fetch into the cache (progress bars from huggingface_hub go to stderr)."""
    import huggingface_hub as hf
    from huggingface_hub import constants

    cache = hub_cache_dir()
    if (failure := unreachable(constants.ENDPOINT)) is not None:
        folder = cached_snapshot(repo_id)
        missing = missing_files(folder, weights=weights) if folder else []
        why = f"the Hub could not be reached ({failure})"
        raise ModelNotFoundError(_not_available(repo_id, folder, missing, why))
    try:
        if not weights:
            path = hf.hf_hub_download(repo_id, CONFIG_FILE, cache_dir=cache)
            return Path(path).parent
        patterns = download_patterns(hf.HfApi().list_repo_files(repo_id))
        report(f"downloading {repo_id} into {cache}")
        return Path(hf.snapshot_download(repo_id, cache_dir=cache, allow_patterns=patterns))
    except Exception as exc:
        mapped = _hub_error(repo_id, exc)
        if mapped is exc:
            raise
        raise mapped from exc


def unreachable(url: str, timeout: float | None = None) -> str | None:
    """Why no TCP connection to ``url``'s host (or to the proxy the environment sets for
    it) opened within ``timeout`` seconds (default ``PROBE_TIMEOUT_S``); None if one did.

    The attempt runs in a daemon thread, so a name lookup that hangs is bounded too."""
    import socket
    import threading
    import urllib.parse
    import urllib.request

    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    parts = urllib.parse.urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    host, port = parts.hostname or "", parts.port or default_port
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or 80
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc.strerror or exc}")

    attempt = threading.Thread(target=connect, name="tpdoc-hub-probe", daemon=True)
    attempt.start()
    attempt.join(timeout)
    return outcome[0] if outcome else f"{host}:{port}: no answer within {timeout:g} s"


def download_patterns(files: list[str]) -> list[str]:
    """What to fetch from a repo listing ``files``: configs, tokenizer, and one weight
    format (safetensors when present, else ``.bin``), never optimizer states or TF/Flax."""
    names = [Path(f).name for f in files]
    has_safetensors = any(n.endswith(".safetensors") for n in names)
    return [*SMALL_FILES, *(SAFETENSORS_PATTERNS if has_safetensors else BIN_PATTERNS)]


def _hub_error(repo_id: str, exc: Exception) -> Exception:
    """A huggingface_hub failure as one line that says what to do (others stay as they are)."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return ModelNotFoundError(
            f"{repo_id}: the repository is gated; accept its terms on huggingface.co and log "
            "in with `hf auth login`, then retry"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ModelNotFoundError(
            f"{repo_id}: no such model on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login`); check the id, or pass a local folder to --model"
        )
    unreachable = (errors.LocalEntryNotFoundError, ConnectionError, TimeoutError)
    transport = getattr(errors, "HTTPError", ())  # httpx's base error (huggingface_hub >= 1)
    if isinstance(exc, unreachable) or (
        isinstance(exc, transport) and not isinstance(exc, errors.HfHubHTTPError)
    ):  # no network, DNS, timeouts: transport errors are not HfHubHTTPErrors
        folder = cached_snapshot(repo_id)
        missing = missing_files(folder, weights=True) if folder else []
        why = f"the Hub could not be reached ({_first(exc)})"
        return ModelNotFoundError(_not_available(repo_id, folder, missing, why))
    if isinstance(exc, errors.RevisionNotFoundError | errors.EntryNotFoundError):
        return ModelNotFoundError(f"{repo_id}: {type(exc).__name__} on the Hub: {_first(exc)}")
    if isinstance(exc, errors.HfHubHTTPError):
        return ModelNotFoundError(f"{repo_id}: the Hub answered with an error: {_first(exc)}")
    if isinstance(exc, OSError):
        return ModelError(f"{repo_id}: download failed: {_first(exc)}; {_how_to_get(repo_id)}")
    return exc


def _first(exc: Exception) -> str:
    """First line of an exception's message (hub errors span several lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
