"""Synthetic documents: one generator, with two recipes (training data and the samples).

The pieces, each used by both recipes unless said otherwise:

- ``fonts``: the faces documents are printed in (Base-14, pymupdf-fonts, installed
  TrueType), split into training and held-out families; ``choose_faces`` picks a pair.
- ``pen``: the drawing primitive: ``Pen`` writes text (aligned, wrapped, paged) on pymupdf
  pages and records every printed field as a ``Fact`` of a ``SynthDoc``.
- ``render``: rasterised pages made to look like real inputs: random scan damage and
  character boxes (training), or one fixed, seeded ``ScanLook`` (the samples' receipt).

The training recipe (``make_document``, for ``tpdoc.train`` and the benchmarks):

- ``values``: what documents say: amounts, dates, numbers, names, multilingual labels.
- ``blocks``: letterheads, key-value fields, item tables, totals, small print, filler,
  in a style drawn at random (``random_pen``).
- ``layouts``: the document kinds (invoice, receipt, ...) put together from blocks.
- ``questions``: questions about a document's facts, and ones it cannot answer.

The samples recipe (``python -m tpdoc.synth.samples``, the files in ``samples/``):

- ``sample_content``: the report's and the receipt's content and questions, from a seed.
- ``sample_layouts``: that content drawn with a ``Pen`` in one fixed style.
- ``samples``: the files written (PDF, PNG, questions.jsonl, README) and the command.
"""
