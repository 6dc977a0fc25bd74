"""Line reading: tiles that show only a few of their lines, to transcribe.

In: a ``PageSample`` (its normalised tile views and every tile's ``TextLine``s), the
normalised value of white paper and a ``random.Random``. Out: views ``[n, 3, T, T]`` in
which everything but a run of 1..``max_lines`` consecutive lines is painted white, and the
text of those lines. Why: transcribing a whole tile asks the language model to find its
way through 144 tokens before it has learnt to look at any; one short line is a few
tokens in one row, so the link from visual tokens to characters is learnt first, and
longer runs carry it over to whole tiles.
"""

from __future__ import annotations

import random

import torch

from tpdoc.train.qa import PageSample, TextLine, joined

LINE_MARGIN = 2  # pixels kept around the lines' box (antialiased edges of the glyphs)


def white_value(mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """White paper after normalisation: ``[3, 1, 1]``."""
    return ((1.0 - torch.tensor(mean)) / torch.tensor(std)).reshape(-1, 1, 1)


def keep_box(view: torch.Tensor, box: tuple[float, float, float, float],
             white: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """A copy of ``view`` ``[3, T, T]`` painted white outside ``box`` (x0, y0, x1, y1)."""
    t = view.shape[-1]
    x0, y0 = (max(0, int(v) - LINE_MARGIN) for v in box[:2])
    x1, y1 = (min(t, int(v + 0.999) + LINE_MARGIN) for v in box[2:])
    out = white.to(view.dtype).expand_as(view).clone()
    out[:, y0:y1, x0:x1] = view[:, y0:y1, x0:x1]
    return out


def line_runs(sample: PageSample, rng: random.Random, n: int, max_lines: int,
              white: torch.Tensor) -> tuple[torch.Tensor, list[TextLine]]:  # fmt: skip
    """Up to ``n`` views each showing a run of consecutive lines of one tile, and the run
    (texts joined by newlines, characters' centres); tiles with more text are picked more
    often."""
    tiles = [i for i, lines in enumerate(sample.lines) if lines]
    views, texts = [], []
    for _ in range(n if tiles else 0):
        i = rng.choices(tiles, weights=[len(sample.lines[j]) for j in tiles])[0]
        lines: list[TextLine] = sample.lines[i]
        k = rng.randint(1, min(max_lines, len(lines)))
        first = rng.randrange(len(lines) - k + 1)
        run = joined(lines[first : first + k])
        views.append(keep_box(sample.views[i], run.box, white))
        texts.append(run)
    if not views:
        return sample.views[:0], []
    return torch.stack(views), texts  # [n, 3, T, T]
