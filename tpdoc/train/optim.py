"""What every training stage's optimiser shares: the learning-rate schedule, the gradient
clip and the tower's lower learning rate.

In: a step budget (and the step a run resumes from). Out: a ``LambdaLR`` factor per step
(linear warm-up, then a cosine down to 5 % of the base rate) and the constants the stages
clip and group their parameters with.
"""

from __future__ import annotations

import math

import torch

WARMUP_STEPS = 200
GRAD_CLIP = 1.0  # max global gradient norm, every stage
# The tower, when it trains beside other parts (stages 2 and R), learns slower: it arrives
# pretrained and is the costly part to unsettle.
VISION_LR_FACTOR = 0.3


def lr_lambda(total: int):
    """The factor on the base learning rate at each step of a ``total``-step run."""

    def f(step: int) -> float:
        if step < WARMUP_STEPS:
            return (step + 1) / WARMUP_STEPS
        progress = min(1.0, (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def warmup_cosine(optimizer: torch.optim.Optimizer, total: int, start: int = 0):
    """``lr_lambda(total)`` as a scheduler whose first step is ``start``: a run that resumes
    with a fresh optimiser (stages R and P) picks the schedule up where it stopped; one that
    restores the scheduler's state (stages 1 and 2) starts at 0."""
    schedule = lr_lambda(total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule(i + start))
