"""Visual question answering: reading a model's answer to a multiple-choice question."""
