"""ui.stages: the one stage table follows the flowchart, and the walk visits every layer."""

from __future__ import annotations

from tests.support import ROOT
from ui.stages import STAGE_BY_ID, STAGES, walk_neighbours


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
