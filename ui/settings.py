"""The operator's settings (environment variables, read when used) and the app's fixed limits.

Environment variables (set by the operator, never by a page):

- `INSIDE_GPT_MODELS_DIR`: folder searched for GPT-2 directories (default `models/` beside
  app.py).
- `INSIDE_GPT_ALLOW_PATHS=1`: adds a free-form directory path box to the sidebar.
- `INSIDE_GPT_MAX_TOKENS`: most tokens one page run shows (default 256; the model's context
  caps it too).
- `INSIDE_GPT_CACHE_MB`: memory for the Traces shared by every session (default 2048); one
  Trace may use at most half of it (a longer text is cut, with a notice). README "Reliability".
- `INSIDE_GPT_HUB_MODELS`: Hugging Face Hub repository ids the model box offers, comma
  separated (`openai-community/gpt2,distilbert/distilgpt2`); chosen, one is downloaded into the
  standard Hugging Face cache (only the files the engine reads), or opened from it offline.
  Nothing is ever downloaded for an id not listed here.
- `INSIDE_GPT_THREADS`: torch intra-op threads (default 1; see DESIGN.md "Threads").
- `INSIDE_GPT_LIVE_TRAINING`: live training runs allowed at once in this process (default 1;
  0 disables live training; README "Live training").
- `INSIDE_GPT_TEST_MODEL=tiny`: tests only; "bundled" and "random" become the tiny preset with
  seeded random weights and cl100k_base[:4096].
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # INSIDE_GPT_HUB_MODELS entries already reported as bad

APP_DIR = Path(__file__).resolve().parent.parent  # the folder of app.py and pages/
HOME_PATH = "app.py"
PAGE_ICON = "🔬"
# The model reads at most a few hundred tokens; longer texts are cut to this many characters
# (with a notice) before anything tokenizes them.
MAX_TEXT_CHARS = 20_000
# The text box itself: Streamlit's browser side silently ignores an edit that would make the
# text longer than this, so it is far above MAX_TEXT_CHARS (a pasted megabyte still arrives and
# is cut with a notice) and the widget message stays under Streamlit's 25 MB widget-state limit.
TEXTBOX_MAX_CHARS = 4_000_000
# A text goes into the page address (shareable links) only while its URL-encoded form is at most
# this long: a reverse proxy refuses longer request lines (nginx: 8 KB by default), and
# Streamlit itself ignores a query string over 524,288 characters as a whole.
URL_TEXT_MAX_CHARS = 4_000


def test_model() -> str:
    """The test seam: "tiny" makes every built-in model the tiny preset (fast AppTest runs)."""
    return os.environ.get("INSIDE_GPT_TEST_MODEL", "")


def models_dir() -> Path:
    """INSIDE_GPT_MODELS_DIR, or `models/` beside app.py."""
    raw = os.environ.get("INSIDE_GPT_MODELS_DIR")
    return Path(raw) if raw else APP_DIR / "models"


def allow_paths() -> bool:
    """Whether INSIDE_GPT_ALLOW_PATHS=1 (a free-form directory path box in the sidebar)."""
    return os.environ.get("INSIDE_GPT_ALLOW_PATHS", "") == "1"


# A Hub repository id: "name" or "owner/name", letters, digits, "-", "_", "." (the Hub's rules).
_REPO_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def hub_models() -> list[str]:
    """INSIDE_GPT_HUB_MODELS: the Hub repository ids the operator allows, in the order given,
    without repeats; an entry that is not a repository id ("..", a URL) is left out with a
    warning in the log. Default: none."""
    ids: list[str] = []
    for raw in os.environ.get("INSIDE_GPT_HUB_MODELS", "").split(","):
        repo_id = raw.strip()
        if not repo_id or repo_id in ids:
            continue
        if _REPO_ID.fullmatch(repo_id) and ".." not in repo_id:
            ids.append(repo_id)
        elif repo_id not in _WARNED:
            _WARNED.add(repo_id)
            log.warning("INSIDE_GPT_HUB_MODELS: %r is not a Hub repository id; left out", repo_id)
    return ids


def max_tokens() -> int:
    """INSIDE_GPT_MAX_TOKENS (default 256, at least 1; an unreadable value counts as 256)."""
    try:
        return max(1, int(os.environ.get("INSIDE_GPT_MAX_TOKENS", "256")))
    except ValueError:
        return 256


def cache_budget_bytes() -> int:
    """INSIDE_GPT_CACHE_MB as bytes (default 2048 MB; at least 16 MB)."""
    try:
        mb = int(os.environ.get("INSIDE_GPT_CACHE_MB", "2048"))
    except ValueError:
        mb = 2048
    return max(16, mb) * 1024 * 1024


def device_name() -> str:
    """INSIDE_GPT_DEVICE: where models run, "cpu" (default), "cuda", "mps" or "auto"
    (engine.checkpoints.resolve_device checks it when a model loads)."""
    return os.environ.get("INSIDE_GPT_DEVICE", "cpu")


def torch_threads() -> int:
    """INSIDE_GPT_THREADS (default 1, at least 1); a value that is not a whole number raises
    ValueError when the app starts."""
    return max(1, int(os.environ.get("INSIDE_GPT_THREADS", "1")))


LIVE_TRAINING_DEFAULT = 1  # one tiny model training at a time: about one CPU core for 2 minutes


def live_training_limit() -> int:
    """INSIDE_GPT_LIVE_TRAINING: how many live training runs may train at once in this process
    (default LIVE_TRAINING_DEFAULT = 1; 0 disables live training; a negative or unreadable
    value counts as 0, so a typo never lets runs through unbounded)."""
    raw = os.environ.get("INSIDE_GPT_LIVE_TRAINING", "").strip()
    if not raw:
        return LIVE_TRAINING_DEFAULT
    try:
        return max(0, int(raw))
    except ValueError:
        log.warning("INSIDE_GPT_LIVE_TRAINING=%r is not a whole number; live training is off", raw)
        return 0
