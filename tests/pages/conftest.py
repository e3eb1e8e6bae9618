"""Every page test runs the app on the tiny test model, with no operator settings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tiny_app(tiny_app: None) -> None:
    """Applies the `tiny_app` fixture (tests/conftest.py) to every test here."""
