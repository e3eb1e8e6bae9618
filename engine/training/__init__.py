"""Offline training: the corpus, the training loop, evaluation (n-gram baselines, head probes)
and the model card's building and rendering.

Only `engine/__main__.py` imports this package, and the app only its `live` module (the live
training run of `ui/live_training.py`); the app reads a checkpoint's card through `engine.card`."""
