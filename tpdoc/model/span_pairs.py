"""End scores given a start: a pointer's answer end conditioned on where the answer starts.

In: the last hidden states of a pointer batch's visual tokens ``[B, K, D]``, where each
sits among the row's ``N`` tokens, and one or more start slots per row ``[B, k]``. Out:
scores to add to the end logits ``[B, k, N*S]``: the dot product of a vector for the
start slot and one for each end slot, both projected from their tokens' hidden states.

Why: scored apart from the start, an end may land on a later slot that ends answers of
the same kind, and the answer runs on into the next table cell ("605.39 £" read as
"605.39 £5,448.51 Subtotal:6,345.71 £"). Given the start, the end can say "the first
currency sign after this amount". The key projection starts at zero, so a pointer that
gains these scores answers as before until it learns them.
"""

from __future__ import annotations

import torch
from torch import nn


class EndGivenStart(nn.Module):
    def __init__(self, dim: int, slots: int, width: int) -> None:
        super().__init__()
        self.slots, self.width = slots, width
        self.query = nn.Linear(dim, slots * width)
        self.key = nn.Linear(dim, slots * width)
        nn.init.zeros_(self.key.weight)
        nn.init.zeros_(self.key.bias)

    def forward(self, states: torch.Tensor, index: torch.Tensor, tokens: int,
                starts: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """``states`` ``[B, K, D]``, ``index`` ``[B, K]`` (each state's token among ``tokens``;
        padding points at ``tokens``), ``starts`` ``[B, k]`` slot indices -> ``[B, k, N*S]``."""
        b, kept, _ = states.shape
        s, w = self.slots, self.width
        rows = torch.arange(b, device=states.device)[:, None]
        full = torch.zeros(2, b, tokens + 1, s, w, device=states.device)
        full[0][rows, index] = self.query(states).float().view(b, kept, s, w)
        full[1][rows, index] = self.key(states).float().view(b, kept, s, w)
        queries, keys = full[:, :, :-1].reshape(2, b, tokens * s, w)  # [B, N*S, w] each
        picked = queries[rows, starts]  # [B, k, w]
        return torch.einsum("bkw,bnw->bkn", picked, keys) / w**0.5
