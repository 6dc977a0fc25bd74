"""Put a pointer model together from what stages R and P trained apart.

In: stage R's ``read.safetensors`` (tower, packer, read-out), stage P's
``pointer.safetensors`` (language model, re-embedding, span scores) and the tokenizer of
a model folder (default: the shipped ``tpdoc-tiny``). Out: a complete tpdoc model folder
with a pointer answer head (``tpdoc.model.pointer``), every weight accounted for; and
``half_precision``, which stores a stage's weights in float16 to be committed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tpdoc.errors import WeightsError
from tpdoc.train import run_pointer, run_read
from tpdoc.weights.checkpoint import save_model


def compose_model(read: Path, pointer: Path, out: Path, base: Path | None = None,
                  dtype: torch.dtype | None = None) -> Path:  # fmt: skip
    parts = run_pointer.answer_parts(pointer)
    config = run_pointer.with_parts(run_read.read_config(read), **parts)
    model = run_pointer.new_model(config, base)  # with the word pieces its table was made with
    copied = run_read.load_weights(model, read)
    run_pointer.load_weights(model, pointer)
    expected = len(run_read.trained_parameters(model))
    if copied != expected:
        raise WeightsError(f"{read}: {copied} of the {expected} read-out tensors present")
    return save_model(model.eval(), out, dtype=dtype)


def half_precision(source: Path, target: Path) -> Path:
    """``source``'s tensors with floats stored as float16 (committed and shipped weights)."""
    from safetensors.torch import load_file, save_file

    from tpdoc.train.stage_files import file_metadata

    state = load_file(str(source))
    halved = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(halved, str(target), metadata=file_metadata(source) or None)
    return target
