"""The browser tests' server: the real app (bundled model) on a free loopback port, one per
module. Without Chromium the tests skip, except when CI is set: CI installs Chromium, so there
they must run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.browser.harness import ARTIFACTS, missing_browser, streamlit_server


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A Streamlit server on the real app (bundled model), stopped at the end."""
    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser test must run, but {reason}")
        pytest.skip(reason)
    try:
        with streamlit_server("app.py", ARTIFACTS / "streamlit.log") as base:
            yield base
    except RuntimeError as err:
        pytest.fail(str(err))
