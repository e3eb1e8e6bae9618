"""ui.stages: the one stage table follows the flowchart, and the walk visits every layer."""

from __future__ import annotations

import pytest

from tests.support import ROOT, lazy_section_keys
from ui.stages import SECTION_KEYS, STAGE_BY_ID, STAGES, walk_neighbours


def test_stages_follow_the_flowchart_and_name_their_pages() -> None:
    assert [s.id for s in STAGES] == [
        "tokens",
        "embeddings",
        "attention",
        "feed_forward",
        "layer_norm",
        "residual",
        "dropout",
        "output",
        "generate",
        "intervene",
        "learning",
    ]
    assert [s.number for s in STAGES] == list(range(1, 12))
    assert STAGE_BY_ID["attention"].path == "pages/3_Attention.py"
    assert STAGE_BY_ID["attention"].url_path == "Attention"
    assert STAGE_BY_ID["feed_forward"].url_path == "Feed_forward"
    for stage in STAGES[:3]:
        assert (ROOT / stage.path).is_file()


def test_walk_goes_through_every_layer_then_to_the_output() -> None:
    def nxt(stage: str, layer: int) -> tuple[str, int] | None:
        step = walk_neighbours(stage, layer, n_layer=3)[1]
        return None if step is None else (step[0].id, step[1])

    def prev(stage: str, layer: int) -> tuple[str, int] | None:
        step = walk_neighbours(stage, layer, n_layer=3)[0]
        return None if step is None else (step[0].id, step[1])

    assert nxt("tokens", 0) == ("embeddings", 0)
    assert nxt("embeddings", 2) == ("attention", 2)
    assert nxt("attention", 1) == ("feed_forward", 1)
    assert nxt("residual", 1) == ("dropout", 1)
    assert nxt("dropout", 0) == ("attention", 1)
    assert nxt("dropout", 2) == ("output", 2)
    assert nxt("output", 2) == ("generate", 2)
    assert nxt("generate", 2) == ("intervene", 2)
    assert nxt("intervene", 2) == ("learning", 2)  # page 11 (issue 18): the walk's last extra
    assert nxt("learning", 2) is None
    assert prev("tokens", 0) is None
    assert prev("attention", 1) == ("dropout", 0)
    assert prev("attention", 0) == ("embeddings", 0)
    assert prev("output", 0) == ("dropout", 2)


def test_the_stage_table_names_every_lazy_section_of_every_page() -> None:
    """`Stage.sections` (the ids a link's `open=` names) are the page's lazy sections, in the
    page's order, read from its source; a section's key is "<stage>_sec_<id>"."""
    for stage in STAGES:
        keys = lazy_section_keys(stage.path)
        assert [stage.section_key(short) for short in stage.sections] == keys, stage.id
    assert STAGE_BY_ID["attention"].section_key("steps") == "attention_sec_steps"
    assert len(SECTION_KEYS) == sum(len(s.sections) for s in STAGES) > 0


def test_a_lazy_section_missing_from_the_stage_table_is_refused() -> None:
    """A section the table does not list could not be opened by a link: refused at once."""
    from ui.widgets import lazy_section

    drawn: list[bool] = []
    with pytest.raises(ValueError, match="stage table"):
        lazy_section("Unlisted", "attention_sec_unlisted", lambda: drawn.append(True))
    assert not drawn


def test_the_readme_lists_every_pages_open_ids() -> None:
    """README's table of `open` ids is the stage table's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for stage in STAGES:
        if stage.sections:
            ids = ", ".join(f"`{short}`" for short in stage.sections)
            assert f"| {stage.short_title} | {ids} |" in readme, stage.id
