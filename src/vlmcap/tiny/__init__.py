"""The built-in tiny vision-language models and the synthetic world they are trained on.

    model       builds ``tiny-random-qwen2.5-vl`` and locates the shipped ``tiny-qwen2.5-vl``
    assets/     the trained weights, tokenizer and processor that ship in the package
    synthetic   scenes of coloured shapes rendered as images and clips (training data, demos)
    questions   multiple-choice questions about those scenes
    training/   the training loop (``python -m vlmcap.tiny.train``)
    evaluate    held-out scores through vLLM (``python -m vlmcap.tiny.evaluate``)

The plugins in ``vlmcap.plugins.tiny`` load these models like any other weights.
"""
