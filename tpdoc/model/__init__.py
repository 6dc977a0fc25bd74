"""The model: vision tower -> TokenPacker projector -> language model, assembled once.

``config`` holds every dimension; ``vision`` and ``convnet`` are the towers, ``packer``
is TokenPacker with its baselines in ``baselines``, ``projectors`` builds the one a config
names; ``prompts``, ``tokenizer`` and ``sequence`` lay out the language model's input;
``readout`` and ``pointer`` are the embedded model's answer head; ``document_model``
assembles the pieces into ``DocumentModel``.
"""
