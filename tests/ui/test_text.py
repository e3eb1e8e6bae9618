"""ui.text: the one Markdown escaper shows tokens as typed."""

from __future__ import annotations

from ui.text import markdown_literal


def test_markdown_literal_shows_tokens_as_typed() -> None:
    assert markdown_literal("*_$x$_*") == "\\*\\_\\$x\\$\\_\\*"
    assert markdown_literal("<b>") == "\\<b\\>"
    assert markdown_literal("你好") == "你好"


def test_markdown_literal_escapes_both_former_sets_and_line_starts() -> None:
    # the union of app._md's and figures.common's sets: inline markup always ...
    assert markdown_literal(":red[x] &amp; {a}(b)!|~`") == (
        "\\:red\\[x\\] \\&amp; \\{a\\}\\(b\\)\\!\\|\\~\\`"
    )
    # ... and lists and headings only where a line starts (a value is quoted mid-sentence)
    assert markdown_literal("-3 ../x #1 +2") == "-3 ../x #1 +2"
    assert markdown_literal("a\n- b\r\n  12. c\n# d\n+ e") == "a\n\\- b\r\n  12\\. c\n\\# d\n\\+ e"
