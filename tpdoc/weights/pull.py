"""``tpdoc pull``: make a hub model loadable offline.

In: a hub id. Out: the model's snapshot in the Hugging Face cache and, for a published
LLaVA checkpoint, the CLIP vision tower its config names (``Pulled``); files already
cached are not fetched again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tpdoc.errors import UsageError
from tpdoc.weights.hub import Report, hub_model_folder, looks_like_hub_id, stderr_report
from tpdoc.weights.published.tower import tower_repo_to_pull


@dataclass(frozen=True)
class Pulled:
    """What ``pull`` left in the cache: the model's folder and any extra repos it needs."""

    repo_id: str
    folder: Path
    extras: tuple[tuple[str, Path], ...]  # (repo id, folder), e.g. the CLIP vision tower


def pull(spec: str, *, report: Report | None = None) -> Pulled:
    """Make ``spec`` (a hub id) loadable offline: download it and, for a published LLaVA
    checkpoint, the vision tower its config names. Already cached files are not fetched."""
    report = report or stderr_report
    if not looks_like_hub_id(spec) or Path(spec).expanduser().exists():
        raise UsageError(f"pull takes a hub id such as org/name, got {spec!r}")
    folder = hub_model_folder(spec, weights=True, report=report)
    extras = []
    tower = tower_repo_to_pull(folder, report=report)
    if tower is not None:
        extras.append(
            (tower, hub_model_folder(tower, weights=True, tokenizer=False, report=report))
        )
    return Pulled(spec, folder, tuple(extras))
