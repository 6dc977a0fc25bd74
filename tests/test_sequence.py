"""HD layout, token counts, prompt tokenisation and batch padding."""

from __future__ import annotations

import pytest
import torch

from tpdoc.documents.tiling import TilePlan
from tpdoc.errors import ConfigError
from tpdoc.model.prompts import PromptIds, PromptTemplate, tokenize_prompt
from tpdoc.model.sequence import (
    IGNORE_INDEX,
    ROW_SEP,
    TILE_SEP,
    Separators,
    assemble_batch,
    count_page_positions,
    page_embeddings,
    page_layout,
)


def plan(rows: int, cols: int, mode: str = "slice") -> TilePlan:
    boxes = tuple((0.0, 0.0, 1.0, 1.0) for _ in range(rows * cols))
    return TilePlan(100, 100, rows, cols, 336, mode, (100, 100), boxes)


def test_layout_is_rows_of_tiles_then_the_global_view():
    assert page_layout(plan(2, 3)) == [0, TILE_SEP, 1, TILE_SEP, 2, ROW_SEP,
                                       3, TILE_SEP, 4, TILE_SEP, 5, ROW_SEP,
                                       6, ROW_SEP]  # fmt: skip
    assert page_layout(plan(1, 1)) == [0, ROW_SEP]
    assert page_layout(plan(1, 1, "pad")) == [0]


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 9), (3, 2), (4, 4), (5, 5)])
@pytest.mark.parametrize("q", [144, 64, 36, 576])
def test_position_count_formula(rows, cols, q):
    n = rows * cols
    expected = n * q + rows * (cols - 1) + rows + ((q + 1) if n > 1 else 0)
    assert count_page_positions(plan(rows, cols), q) == expected
    assert count_page_positions(plan(1, 1), 144) == 145  # the published single-tile page


def test_page_embeddings_put_views_and_separators_in_place():
    q, d = 3, 4
    p = plan(2, 2)
    views = torch.arange(p.num_views, dtype=torch.float32)[:, None, None].expand(-1, q, d) + 1
    seps = torch.tensor([[-1.0] * d, [-2.0] * d])
    out = page_embeddings(views, p, seps)
    assert out.shape == (count_page_positions(p, q), d)
    firsts = out[:, 0].tolist()
    expected = [1] * q + [-1] + [2] * q + [-2] + [3] * q + [-1] + [4] * q + [-2] + [5] * q + [-2]
    assert firsts == expected
    with pytest.raises(ConfigError, match="5 views but 4"):
        page_embeddings(views[:4], p, seps)


class _Tok:
    """A tokenizer stand-in: one id per character, BOS = 1 (like LLaMA's)."""

    bos_token_id = 1

    def __call__(self, text: str):
        class Out:
            input_ids = [1, *(ord(c) for c in text)]

        return Out()


def test_prompt_tokenisation_drops_the_bos_of_later_chunks():
    ids = tokenize_prompt(_Tok(), "ab<image>\ncd")
    assert ids == PromptIds(before=(1, ord("a"), ord("b")), after=(ord("\n"), ord("c"), ord("d")))
    with pytest.raises(ConfigError, match="exactly one"):
        tokenize_prompt(_Tok(), "no image here")


def test_real_tokenizer_rule(tiny_tokenizer):
    prompt = "Hello <image>\nWhat is the total?"
    ids = tokenize_prompt(tiny_tokenizer, prompt)
    head, tail = prompt.split("<image>")
    assert list(ids.before) == tiny_tokenizer(head).input_ids
    assert list(ids.after) == tiny_tokenizer(tail).input_ids[1:]
    assert ids.before[0] == tiny_tokenizer.bos_token_id
    assert tiny_tokenizer.bos_token_id not in ids.after


def test_vicuna_template_is_the_published_conversation():
    t = PromptTemplate.load("vicuna_v1")
    text = t.render("What is the total?", short_answer=True)
    assert text == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions. USER: <image>\n"
        "What is the total?\nAnswer the question using a single word or phrase. ASSISTANT:"
    )
    assert t.render("q").endswith("USER: <image>\nq ASSISTANT:")
    with pytest.raises(ConfigError, match="unknown prompt template"):
        PromptTemplate.load("no-such-template")


def test_separators_as_published(tiny_tokenizer):
    seps = Separators.from_tokenizer(tiny_tokenizer)
    assert seps.tile == tiny_tokenizer.convert_tokens_to_ids(",")
    # '\n' is no token string of a byte-level vocabulary: <unk>, exactly like LLaMA's.
    assert seps.row == tiny_tokenizer.unk_token_id


@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_padding_masks_and_labels(side):
    d = 2
    embed = torch.nn.Embedding(50, d)
    prompts = [PromptIds((1, 5), (6,)), PromptIds((1,), (7, 8, 9))]
    pages = [torch.full((3, d), 0.5), torch.full((1, d), 0.25)]
    targets = [[10, 2], [11, 12, 2]]
    batch = assemble_batch(embed, prompts, pages, targets, padding_side=side)
    lengths = [2 + 3 + 1 + 2, 1 + 1 + 3 + 3]
    assert batch.lengths == lengths and batch.inputs_embeds.shape == (2, 8, d)
    assert batch.attention_mask.sum(1).tolist() == lengths
    labels = batch.labels
    for i, target in enumerate(targets):
        real = labels[i][batch.attention_mask[i].bool()]
        assert real[-len(target) :].tolist() == target
        assert (real[: -len(target)] == IGNORE_INDEX).all()
    assert (labels[batch.attention_mask == 0] == IGNORE_INDEX).all()
    row = 0 if side == "right" else 8 - lengths[1]
    torch.testing.assert_close(batch.inputs_embeds[1, row + 1], torch.full((d,), 0.25))
    if side == "left":
        assert batch.attention_mask[1, : 8 - lengths[1]].sum() == 0


def test_batch_rejects_mismatched_sizes():
    embed = torch.nn.Embedding(5, 2)
    with pytest.raises(ConfigError, match="batch sizes differ"):
        assemble_batch(embed, [PromptIds((1,), ())], [])
