"""Load a published TokenPacker checkpoint as a ``DocumentModel``: the one place it is assembled.

In: a published checkpoint folder (weights, tokenizer, ``config.json``), a device, a dtype,
an optional tile cap and GPU memory budget. Out: a ``DocumentModel`` in eval mode, built
without allocating random weights, with every weight checked by name and shape before any
tensor is copied, and placed on the CPU, one GPU, or GPU with CPU offload (accelerate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tpdoc.errors import ModelFormatError, ModelNotFoundError, WeightsError
from tpdoc.weights.files import CheckpointReader, find_weight_files
from tpdoc.weights.hub import Report, stderr_report
from tpdoc.weights.published.config import read_published_config
from tpdoc.weights.published.keys import (
    CLIP_SKIPPED,
    DERIVED_BUFFERS,
    PROJECTOR_PREFIX,
    TOWER_PREFIX,
    split_keys,
    tower_key_map,
)
from tpdoc.weights.published.placement import (
    HEADROOM_BYTES,
    describe_placement,
    plan_placement,
    weight_bytes,
)
from tpdoc.weights.published.tokenizer import load_published_tokenizer
from tpdoc.weights.published.tower import TowerSource

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tpdoc.model.document_model import DocumentModel


def _tower_reader(
    reader: CheckpointReader, tower_keys: list[str], source: TowerSource
) -> tuple[CheckpointReader, list[str], str, str]:
    """Where the tower's weights come from: the checkpoint's keys or the tower's folder.
    Returns the reader, the keys to load, their common prefix and a name for errors."""
    if tower_keys:
        return reader, tower_keys, TOWER_PREFIX, f"{reader.weights.folder} (vision tower)"
    if source.folder is None:
        raise ModelNotFoundError(f"vision tower {source.spec}: weights are not available")
    files = find_weight_files(source.folder)
    if files is None or files.missing:
        missing = f" ({', '.join(files.missing)})" if files else ""
        raise ModelFormatError(f"{source.folder}: the vision tower's weights are missing{missing}")
    own = CheckpointReader(files)
    keys = [
        k for k in own.shapes if not DERIVED_BUFFERS.search(k) and not k.startswith(CLIP_SKIPPED)
    ]
    return own, keys, "", f"{source.folder} (vision tower)"


def _materialize(
    module: nn.Module,
    items: Iterable[tuple[str, torch.Tensor]],
    rename: Callable[[str], str],
    device_of: Callable[[str], int | str | torch.device],
    dtype: torch.dtype,
) -> None:
    """Put each checked tensor in place of its (meta) parameter, cast, on its device."""
    from accelerate.utils import set_module_tensor_to_device

    for key, tensor in items:
        name = rename(key)
        set_module_tensor_to_device(module, name, device_of(name), value=tensor, dtype=dtype)


def load_published_model(
    folder: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    max_tiles: int | None = None,
    max_memory: dict[int | str, int | str] | None = None,
    report: Report | None = None,
) -> DocumentModel:
    """Build the ``DocumentModel`` of a published checkpoint folder and load it strictly.

    The tower and the LLaMA are built on the meta device (no random weights), every
    checkpoint key and shape is checked before any tensor is copied, and tensors are read
    shard by shard straight to their device in ``dtype``. ``report`` gets one-line notes
    (stderr by default): the tower's source, the tile cap's source, the placement.
    """
    import torch
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device as move_tensor

    from tpdoc.model.document_model import DocumentModel, build_language_model, build_vision_tower
    from tpdoc.model.projectors import build_projector, load_projector_state
    from tpdoc.weights.tensors import check_state, tied_aliases

    report = report or stderr_report
    folder, device = Path(folder), torch.device(device)
    dtype = dtype or torch.float32
    weights = find_weight_files(folder)
    if weights is None:
        raise ModelFormatError(f"{folder}: no weights (model.safetensors or pytorch_model.bin)")
    if weights.missing:
        raise ModelFormatError(
            f"{folder}: incomplete checkpoint, shards named by the index are missing: "
            f"{', '.join(weights.missing)}; download it again"
        )
    reader = CheckpointReader(weights)
    lm_keys, projector_keys, tower_keys = split_keys(reader.shapes)
    published = read_published_config(
        folder, max_tiles=max_tiles, tower_weights=not tower_keys, report=report
    )
    config = published.config
    tokenizer = load_published_tokenizer(
        folder, im_start_end=published.im_start_end, im_patch_token=published.im_patch_token
    )
    if len(tokenizer) > config.text["vocab_size"]:
        raise ModelFormatError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the LLaMA vocabulary "
            f"{config.text['vocab_size']} (special image tokens added by mm_use_im_* need "
            "rows in embed_tokens)"
        )

    with init_empty_weights():  # parameters on meta, buffers (rotary, position ids) real
        vision = build_vision_tower(config)
        language_model = build_language_model(config.text)
    tower_reader, tower_keys, tower_prefix, tower_source = _tower_reader(
        reader, tower_keys, published.tower
    )

    # Every key and shape checked before anything is copied.
    lm_expected = {k: v.shape for k, v in language_model.state_dict().items()}
    check_state(lm_expected, reader.meta(lm_keys), f"{folder} (language model)",
                optional=tied_aliases(language_model, by_identity=True))  # fmt: skip
    clip = vision.vision_tower
    tower_names = tower_key_map(clip, tower_keys, tower_prefix)  # installed -> checkpoint
    tower_expected = {tower_names[k]: v.shape for k, v in clip.state_dict().items()}
    check_state(tower_expected, tower_reader.meta(tower_keys), tower_source)
    projector = build_projector(config.projector)
    load_projector_state(projector, dict(reader.tensors(projector_keys)), PROJECTOR_PREFIX)

    reserve = weight_bytes(vision, dtype) + weight_bytes(projector, dtype) + HEADROOM_BYTES
    placement = plan_placement(
        language_model, device, dtype, reserve_bytes=reserve, max_memory=max_memory
    )
    installed = {file: own for own, file in tower_names.items()}
    _materialize(clip, tower_reader.tensors(tower_keys), installed.__getitem__,
                 lambda _: placement.main, dtype)  # fmt: skip
    _materialize(language_model, reader.tensors(lm_keys), str, placement.device_of, dtype)
    if config.text.get("tie_word_embeddings"):
        language_model.tie_weights()
    left = [
        n for n, p in [*clip.named_parameters(), *language_model.named_parameters()] if p.is_meta
    ]
    if left:  # pragma: no cover - check_state guarantees every parameter was given
        raise WeightsError(f"{folder}: parameters left without weights: {', '.join(left[:8])}")

    vision.to(placement.main)
    projector.to(device=placement.main, dtype=dtype)
    for name, _ in list(language_model.named_buffers()):  # rotary tables: keep their dtype
        move_tensor(language_model, name, placement.main)
    model = DocumentModel(config, vision, projector, language_model, tokenizer)
    report(describe_placement(model, placement))
    if placement.dispatched:
        from accelerate import dispatch_model

        dispatch_model(language_model, device_map=placement.device_map, main_device=placement.main)
        language_model.hf_device_map = dict(placement.device_map)
    return model.eval()
