"""The live-training section alone, for tests/browser/test_live_training.py: a short owner
grace, and the run's end written to the server's log (the test reads it there)."""

import dataclasses
import logging
import sys

from engine.training.live import LIVE_CONFIG
from ui.live_training import render_live_training

live_log = logging.getLogger("engine.training.live")
if not live_log.handlers:
    live_log.setLevel(logging.INFO)
    live_log.addHandler(logging.StreamHandler(sys.stdout))

render_live_training(config=dataclasses.replace(LIVE_CONFIG, owner_grace_s=2.0))
