"""What a pointer model knows of a question's words beyond their bytes.

In: a question, the character span of each of its byte tokens, and a word-piece
vocabulary with a frozen table of pretrained word vectors. Out: ``[n, D]``, one vector
per byte token, added to the byte embeddings: every byte of a word carries the word's
vector, projected to the language model's width.

Why: the embedded language model is small and learns its questions from a few hundred
training phrasings, so a question worded another way ("what is the headcount?") shares
too few bytes with those it knows ("how many employees are there?"). Pretrained word
vectors put such words close together. The bytes stay, so a question still matches the
printed label it names character by character.

The vectors are WordLlama's ``l2_supercat`` token embeddings (MIT, the ``wordllama``
package; Llama-2 word pieces), cut to their first components (they are trained to keep
their meaning when cut). Training reads them from the installed package
(``from_wordllama``); a model folder carries its table in its weights and the word-piece
tokenizer as ``question_words.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tpdoc.errors import ModelFormatError

WORDS_FILE = "question_words.json"
WORDLLAMA_WEIGHTS = "weights/l2_supercat_256.safetensors"
WORDLLAMA_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"


class QuestionWords(nn.Module):
    """A frozen word-vector table ``[vocab, dim]``, its word-piece tokenizer and a learnt
    projection to the language model's width ``out``, which starts at zero (a model that
    gains question words starts out answering as before)."""

    def __init__(self, vocab: int, dim: int, out: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(vocab, dim), requires_grad=False)
        self.proj = nn.Linear(dim, out)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.tokenizer: Any = None  # a tokenizers.Tokenizer, set by ``use``

    def use(self, tokenizer: Any, table: torch.Tensor | None = None) -> QuestionWords:
        """Take a word-piece tokenizer (and, for a new model, its vectors ``[V, >= dim]``,
        cut to the table's width)."""
        if tokenizer.get_vocab_size() > self.table.shape[0]:
            raise ModelFormatError(
                f"question words: the tokenizer has {tokenizer.get_vocab_size()} pieces, the "
                f"table {self.table.shape[0]}"
            )
        self.tokenizer = tokenizer
        if table is not None:
            with torch.no_grad():
                self.table.copy_(table[: self.table.shape[0], : self.table.shape[1]])
        return self

    def load_tokenizer(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        path = folder / WORDS_FILE
        if not path.is_file():
            raise ModelFormatError(f"{folder}: no {WORDS_FILE} (its config names question words)")
        self.use(Tokenizer.from_file(str(path)))

    def save_tokenizer(self, folder: Path) -> None:
        self.tokenizer.save(str(folder / WORDS_FILE))

    def pieces(self, text: str, spans: Sequence[tuple[int, int]]) -> list[int]:
        """The word piece holding the first character of each span (``-1``: none, e.g. the
        start token's empty span)."""
        if self.tokenizer is None:
            raise ModelFormatError("question words have no tokenizer (load a model folder)")
        folded = text.lower()
        if len(folded) != len(text):  # a rare character whose lower case is longer
            folded = text
        enc = self.tokenizer.encode(folded, add_special_tokens=False)
        at = [-1] * (len(text) + 1)
        for piece, (start, end) in zip(enc.ids, enc.offsets, strict=True):
            for c in range(start, min(end, len(text))):
                at[c] = piece
        return [at[start] if end > start else -1 for start, end in spans]

    def forward(self, text: str, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
        """A question and its byte tokens' character spans -> ``[n, out]``."""
        ids = torch.tensor(self.pieces(text, spans), dtype=torch.long, device=self.table.device)
        vectors = self.table[ids.clamp(min=0)] * (ids >= 0).unsqueeze(-1)  # [n, dim]
        return self.proj(vectors.to(self.proj.weight.dtype))  # [n, out]


def from_wordllama(words: QuestionWords) -> QuestionWords:
    """Fill ``words`` with WordLlama's tokenizer and vectors from the installed ``wordllama``
    package (the ``train`` extra; nothing is downloaded)."""
    from importlib.util import find_spec

    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    spec = find_spec("wordllama")
    if spec is None or spec.origin is None:
        raise ModelFormatError(
            "question words need the wordllama package: pip install 'tpdoc[train]'"
        )
    root = Path(spec.origin).parent
    table = load_file(str(root / WORDLLAMA_WEIGHTS))["embedding.weight"].float()
    return words.use(Tokenizer.from_file(str(root / WORDLLAMA_TOKENIZER)), table)
