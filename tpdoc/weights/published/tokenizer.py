"""The tokenizer of a published checkpoint, with the image tokens its config asks for.

In: the checkpoint folder (``tokenizer.json``, else a SentencePiece ``tokenizer.model``) and
the config's ``mm_use_im_start_end`` / ``mm_use_im_patch_token``. Out: the LLaMA tokenizer
with ``<im_patch>``, ``<im_start>`` and ``<im_end>`` added as the published loader adds them.
"""

from __future__ import annotations

from pathlib import Path

from tpdoc.errors import ModelFormatError

IMAGE_PATCH_TOKEN = "<im_patch>"
IM_START_TOKEN, IM_END_TOKEN = "<im_start>", "<im_end>"


def load_published_tokenizer(folder: Path, *, im_start_end: bool, im_patch_token: bool):
    """The folder's LLaMA tokenizer (``tokenizer.json``, else ``tokenizer.model`` through
    sentencepiece), with ``<im_patch>`` / ``<im_start>`` / ``<im_end>`` added when the config
    says so, as the published loader does. Never through ``AutoTokenizer``: that would read
    ``config.json`` as transformers' LLaVA."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    elif (folder / "tokenizer.model").is_file():
        try:  # transformers reads tokenizer.model through both
            import google.protobuf  # noqa: F401
            import sentencepiece  # noqa: F401
        except ImportError as exc:
            raise ModelFormatError(
                f"{folder}: reading tokenizer.model needs the sentencepiece and protobuf "
                "packages: pip install sentencepiece protobuf"
            ) from exc
        from transformers import LlamaTokenizer

        tokenizer = LlamaTokenizer.from_pretrained(str(folder))
    else:
        raise ModelFormatError(f"{folder}: no tokenizer (tokenizer.json or tokenizer.model)")
    if im_patch_token:
        tokenizer.add_tokens([IMAGE_PATCH_TOKEN], special_tokens=True)
    if im_start_end:
        tokenizer.add_tokens([IM_START_TOKEN, IM_END_TOKEN], special_tokens=True)
    return tokenizer
