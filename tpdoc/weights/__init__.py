"""Weights: from a model name to a loaded ``DocumentModel``.

``registry`` turns names into folders and configs, ``hub`` fetches them from the Hugging
Face Hub, ``checkpoint`` reads and writes tpdoc folders, ``published`` reads the published
TokenPacker checkpoints (LLaVA-1.5 format), ``tensors`` reads safetensors strictly,
``identity`` fingerprints a model for the caches, ``loading`` picks device, dtype and
format.
"""
