"""engine.lens.tokens: characters per token."""

from __future__ import annotations

from engine.lens import tokens as lt


def test_characters_per_token() -> None:
    assert lt.characters_per_token("abcdef", 3) == 2.0
    assert lt.characters_per_token("", 0) == 0.0
