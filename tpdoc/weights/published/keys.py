"""The published checkpoints' tensor names, mapped onto a ``DocumentModel``'s parts.

In: the key names of a published checkpoint (and of the installed ``CLIPVisionModel``).
Out: the keys split by part, and the tower's installed names -> the file's names.

Published keys -> DocumentModel:
  ``model.embed_tokens.*``, ``model.layers.*``, ``model.norm.*``, ``lm_head.*``
      -> ``language_model.*``
  ``model.mm_projector.*`` -> ``projector.*`` (TokenPacker's published names)
  ``model.vision_tower.vision_tower.vision_model.*`` (when present)
      -> ``vision.vision_tower.*`` (under the installed transformers' CLIP names)
Without tower keys, the tower's own folder provides ``vision_model.*`` (the text half of a
full CLIP checkpoint is skipped).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

PROJECTOR_PREFIX = "model.mm_projector."
TOWER_PREFIX = "model.vision_tower.vision_tower."
TOWER_KEYS = "vision_model."  # the CLIP tower's keys in published and openai files
CLIP_SKIPPED = ("text_model.", "visual_projection.", "text_projection.", "logit_scale")
# Buffers some older saves carry; recomputed from the config, never learned.
DERIVED_BUFFERS = re.compile(r"(\.rotary_emb\.inv_freq|embeddings\.position_ids)$")


def split_keys(shapes: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str], list[str]]:
    """Checkpoint keys -> (language model, projector, vision tower); derived buffers dropped."""
    lm, projector, tower = [], [], []
    for key in shapes:
        if DERIVED_BUFFERS.search(key):
            continue
        if key.startswith(PROJECTOR_PREFIX):
            projector.append(key)
        elif key.startswith(TOWER_PREFIX):
            tower.append(key)
        else:
            lm.append(key)
    return lm, projector, tower


def tower_key_map(clip: nn.Module, keys: list[str], prefix: str) -> dict[str, str]:
    """The installed ``CLIPVisionModel``'s state names -> the checkpoint's names for them.

    openai's files, the published checkpoints and transformers 4 say ``vision_model.*``;
    transformers 5 names the same tensors without that prefix. Either file convention maps
    onto either installed one; anything else stays unmatched and is named by the check.
    """
    file_prefix = (
        prefix + TOWER_KEYS if any(k.startswith(prefix + TOWER_KEYS) for k in keys) else prefix
    )
    return {own: file_prefix + own.removeprefix(TOWER_KEYS) for own in clip.state_dict()}
