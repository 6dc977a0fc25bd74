"""Guided attention: which packed token each character is written from, and the loss."""

import math

import pytest
import torch

from tpdoc.train.alignment import GUIDED_HEAD, attention_loss, eager_attention, token_targets
from tpdoc.train.qa import TextLine


def test_each_character_looks_at_the_packed_token_under_its_centre():
    # 64-px tile, 4 x 4 packed grid of 16-px regions.
    line = TextLine((0, 0, 64, 20), "a €b", ((1.0, 5.0), None, (17.0, 5.0), (63.9, 31.0)))
    # '€' is three byte tokens, all from the same token; the inserted space is unguided.
    assert token_targets(line, 64, 4, [1, 1, 3, 1]) == [0, -1, 1, 1, 1, 7]


def test_the_loss_reads_the_guided_head_at_the_query_before_each_token():
    layers, heads, seq = 3, 2, 10
    attentions = [torch.full((2, heads, seq, seq), 0.01) for _ in range(layers)]
    for layer in attentions[1:]:
        layer[0, GUIDED_HEAD, 6, 1 + 3] = 0.5  # row 0: text starts at 7, visual at 1
        layer[1, GUIDED_HEAD, 4, 2 + 0] = 0.25  # row 1: text starts at 5, visual at 2
    attentions[0][:] = 1.0  # the first layer is never guided
    loss = attention_loss(attentions, [7, 5], [1, 2], [[3, -1], [0]])
    assert loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2, rel=1e-4)
    assert attention_loss(attentions, [7], [1], [[-1, -1]]) is None


def test_guided_training_moves_attention_onto_the_target():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, vocab_size=16))  # fmt: skip
    visual = torch.randn(8, 4, 32)  # 8 samples of 4 visual tokens, then 3 text tokens
    text = torch.randint(4, 16, (8, 3))
    targets = [[int(t) % 4 for t in row] for row in text]  # token j looks at some visual token
    opt = torch.optim.Adam(lm.parameters(), 1e-2)

    def loss() -> torch.Tensor:
        embeds = torch.cat([visual, lm.get_input_embeddings()(text)], dim=1)
        with eager_attention(lm):
            out = lm(inputs_embeds=embeds, output_attentions=True)
        return attention_loss(out.attentions, [4] * 8, [0] * 8, targets)

    first = loss().item()
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.5 * first
    assert lm.config._attn_implementation != "eager"  # restored after each block
