"""The embedded model's tokenizer: a small byte-level BPE trained with ``tokenizers``.

In: an iterable of training texts and a vocabulary size. Out: a transformers
``PreTrainedTokenizerFast`` (saved as ``tokenizer.json``) with ``<unk> <s> </s> <pad>`` at
ids 0-3 and BOS added to every encoding. Digits are always single tokens, so a number on
the page is copied digit by digit, the way the model reads it. With ``vocab_size`` =
4 + 256 there are no merges at all: one token per byte, so one per printed ASCII
character, which is what the embedded model uses (its transcriptions are then aligned
character by character with the page, see ``tpdoc.train.alignment``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0, 1, 2, 3


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
