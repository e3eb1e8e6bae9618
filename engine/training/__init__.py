"""Offline training: the corpus, the training loop, evaluation (n-gram baselines, head probes)
and the model card's building and rendering.

Only `engine/__main__.py` imports this package; the app never does (it reads a checkpoint's card
through `engine.card`)."""
