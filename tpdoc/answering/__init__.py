"""Answers: plan the pages a question needs, ask the model, report what it cost.

``planning`` and ``budget`` plan views and count tokens, ``qa`` is the engine
(``DocumentQA``) with its caches in ``cache`` and ``prefixes``, ``results`` and
``records`` are what comes out; ``batch``, ``chat`` and ``evaluate`` (with ``anls``)
drive it for many pairs, a conversation, or a labelled set.
"""
