"""The published TokenPacker / TokenPacker-HD checkpoints (LLaVA-1.5 format) as a DocumentModel.

In: a folder (local, or a hub snapshot from ``tpdoc.weights.hub``) in the published layout: a flat
LLaMA ``config.json`` plus LLaVA's ``mm_*`` fields (``model_type: "llava"``,
``LlavaLlamaForCausalLM``), weights as safetensors or ``pytorch_model*.bin`` shards (read
weights-only), a LLaMA tokenizer, and the CLIP vision tower that ``mm_vision_tower`` names.
Out: the equivalent ``ModelConfig``, so geometry, ``tpdoc inspect``, tiling, prompting and
sequence assembly are shared with tpdoc's own format; and a ``DocumentModel`` with every
weight checked by name and shape, built without allocating random weights, placed on the
CPU, one GPU, or GPU with CPU offload (accelerate).

The weight files and their lazy reader are ``tpdoc.weights.files`` (tpdoc's own folders use
them too); the catalogue of known checkpoints is ``tpdoc.weights.catalogue``. One job a
module here, in the order a load uses them:
  ``format``     which format a ``config.json`` is in, and why tpdoc cannot read one
  ``keys``       the published tensor names -> the ``DocumentModel``'s parts
  ``tower``      the CLIP tower ``mm_vision_tower`` names: its folder or hub id, its config
  ``config``     ``config.json`` -> ``ModelConfig``, with the tile cap's source
  ``tokenizer``  the LLaMA tokenizer with the image tokens the config asks for
  ``placement``  CPU / GPU / offload planning and its one-line report
  ``loader``     ``load_published_model``: the one place the model is assembled
"""
