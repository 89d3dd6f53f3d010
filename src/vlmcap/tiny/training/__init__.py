"""Training the tiny Qwen2.5-VL on the synthetic scenes (``python -m vlmcap.tiny.train``).

config      TrainConfig (one run), TaskMix, the media sizes drawn
tasks       scenes -> Task examples (captions, questions, image pairs): TaskSampler
encoding    Task -> tensors through the plugin's make_request and the processor; collate,
            forward (loss on the answer tokens)
patch_init  colour-blind patch-embedding starts (random or k-means spatial filters)
loop        fit (the steps, held-out checks) and train (writes the model folder)
"""
