"""Training the embedded model: reading pretraining, then question answering.

Stages run through ``python -m tpdoc.train STAGE`` (or ``tpdoc train``), built on
``accelerate`` so the same code runs on this CPU, one GPU or many.

Stages (one module each, ``train_*`` their entry point):

- ``run_glyphs``: stage 1, the vision tower learns to read (glyph classification).
- ``run_qa``: stage 2, the whole model answers questions, with reading mixed in; its
  per-page losses are in ``qa_losses``, its held-out evaluation in ``qa_eval`` and the
  packed tokens' glyph read-out in ``packed_glyphs``.
- ``run_read``: stage R, tower + TokenPacker learn a dense read-out of every slot.
- ``run_pointer``: stage P (and J), the pointer answer head on read-outs.
- ``compose``: a pointer model from stages R and P; float16 copies of weights.

Shared by the stages:

- ``optim``: the warm-up + cosine schedule, the gradient clip, the tower's lower rate.
- ``stage_files``: weights, ``log.jsonl`` and ``progress.json`` in a stage's ``OUT``.
- Data: ``glyphs`` (glyph crops, labels, head), ``qa`` (page samples with questions and
  transcriptions), ``lines`` (lines shown alone), ``spans`` (read-out and span targets),
  ``alignment`` (guided attention targets and loss).
"""
