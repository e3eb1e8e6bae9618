"""The page benchmark's interaction code (bench/pages_bench.py) on the tiny test model: body
widgets found from the AppTest tree and moved to another value, server time of the script run,
and a widget inside an `st.fragment` rerun as the browser asks for it (that fragment alone)."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from bench import pages_bench as pb
from bench import run as bench_run

pytestmark = pytest.mark.slow

ATTENTION, DROPOUT, RESIDUAL, OUTPUT = (
    "pages/3_Attention.py",
    "pages/7_Dropout.py",
    "pages/6_Residual.py",
    "pages/8_Output.py",
)
ROUNDS = 2
# What a user changes on these pages (at the tiny model's 32 tokens no window slider is drawn).
EXPECTED = {
    ATTENTION: {"attention_head"},  # the query picker is in a lazy section, closed at first
    DROPOUT: {"dropout_p", "dropout_seed"},
    RESIDUAL: {"residual_log"},
    OUTPUT: {"output_temperature", "output_top_k", "output_top_p", "output_shown"},
}


@pytest.fixture(scope="module")
def measured() -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INSIDE_GPT_TEST_MODEL", "tiny")
        for name in ("INSIDE_GPT_MODELS_DIR", "INSIDE_GPT_MAX_TOKENS", "INSIDE_GPT_HUB_MODELS"):
            mp.delenv(name, raising=False)
        return pb.measure_pages(rounds=ROUNDS, pages=list(EXPECTED))


def _positive(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_every_body_widget_is_moved_and_timed(measured: dict) -> None:
    pages = [p["page"] for p in measured["pages"]]
    assert pages == [ATTENTION, RESIDUAL, DROPOUT, OUTPUT]  # in STAGES order
    assert measured["text_tokens"] == 32  # the tiny model's whole context
    for page in measured["pages"]:
        assert not page["errors"], page["errors"]
        assert EXPECTED[page["page"]] <= set(page["exercised"]), page["exercised"]
        for name in page["exercised"]:
            w = page["widgets"][name]
            assert len(w["samples"]) == ROUNDS, name
            for s in w["samples"]:
                assert _positive(s["server_s"]) and _positive(s["wall_s"]), (name, s)
                assert s["server_s"] <= s["wall_s"]  # AppTest's polling and parsing on top
                assert s["changed"] and s["from"] != s["to"], (name, s)
                assert s["scripts"] >= 1 and not s["fragment"]  # no page uses a fragment here
        # the second round moves the widget on again: a new value, not back to the first
        head = page["widgets"].get("attention_head")
        if head:
            assert head["samples"][0]["to"] == head["samples"][1]["from"]
        # the worst widget is the one with the largest median, and it is timed
        worst = max(
            (w for w in page["widgets"].values() if w["samples"]),
            key=lambda w: w["server_median_s"],
        )
        assert page["interaction_worst_widget"] == worst["name"]
        assert page["interaction_worst_s"] == worst["server_median_s"]
        assert len(page["rerun_server_s"]) == ROUNDS
        assert all(_positive(t) for t in page["rerun_server_s"] + page["rerun_s"])
        # the walk's buttons are listed, not pressed
        buttons = {n for n, w in page["widgets"].items() if w["kind"] == "button"}
        assert buttons and not buttons & set(page["exercised"])


def test_the_widget_value_changes_in_session_state(tiny_app: None) -> None:
    text = pb.text_of_tokens(20)
    page = pb._Page(ATTENTION, text, "bundled", {"errors": [], "widgets": {}})
    with pb.timed_apptest():
        page.open()
        before = page.at.session_state["attention_head"]
        page.interact("attention_head", 0)
    after = page.at.session_state["attention_head"]
    assert after == (before + 1) % 2  # the tiny model's two heads
    assert page.at.session_state["head"] == after  # the shared value follows the picker
    assert not page.row["errors"]


FRAGMENT_APP = """
import time

import streamlit as st

ss = st.session_state
ss["body_runs"] = ss.get("body_runs", 0) + 1
st.slider("outside", 0, 10, 0, key="outside")
time.sleep(0.2)


@st.fragment
def part():
    ss["fragment_runs"] = ss.get("fragment_runs", 0) + 1
    st.slider("inside", 0, 10, 0, key="inside")
    st.markdown(f"inside is {ss['inside']}")


part()
st.markdown("after the fragment")
"""


def test_a_widget_in_a_fragment_reruns_only_its_fragment() -> None:
    page = pb._Page("fragment", "", "", {"errors": [], "widgets": {}})
    page.factory = lambda: AppTest.from_string(FRAGMENT_APP, default_timeout=30)
    with pb.timed_apptest():
        first = page.open()
        assert first.server_s >= 0.2 and not first.fragment_ids
        page.interact("inside", 0)
        ss = page.at.session_state
        assert (ss["body_runs"], ss["fragment_runs"], ss["inside"]) == (1, 2, 1)
        # the browser keeps the rest of the page: the whole page is still in the tree
        assert [w.key for w in page.at.slider] == ["outside", "inside"]
        assert [m.value for m in page.at.markdown] == ["inside is 1", "after the fragment"]
        page.interact("outside", 0)  # outside the fragment: the whole script
        assert (ss["body_runs"], ss["fragment_runs"]) == (2, 3)
    inside, outside = (page.row["widgets"][k]["samples"][0] for k in ("inside", "outside"))
    assert inside["fragment"] and not outside["fragment"]
    assert inside["changed"] and outside["changed"]
    assert inside["server_s"] < 0.1 <= 0.2 <= outside["server_s"]  # the sleep is outside


def test_targets_and_table_show_the_interactions(measured: dict) -> None:
    rows = [pb.summarise(p) for p in measured["pages"]]  # idempotent
    targets = bench_run.page_targets({**measured, "pages": rows})
    interaction = next(t for t in targets if "interaction" in t["target"])
    worst = max(rows, key=lambda p: p["interaction_worst_s"])
    assert interaction["worst"] == pytest.approx(worst["interaction_worst_s"] / 0.15)
    assert interaction["at"] == f"{worst['title']}: {worst['interaction_worst_widget']}"
    assert interaction["met"] == (worst["interaction_worst_s"] <= 0.15)
    assert any("plain rerun" in t["target"] for t in targets)
    table = pb.markdown(measured)
    assert "| worst widget |" in table and "load average" in table
    for page in rows:
        assert f"| {page['title']} |" in table
        for name in page["exercised"]:
            assert name in table


def test_changes_that_compute_anew_are_kept_apart_from_views_of_cached_data(
    measured: dict,
) -> None:
    """A new dropout probability runs the model again (a dropout pass, DROPOUT_TRACES); a new
    head reads patterns of a layer already computed: the first is not a rerun on cached data
    and is kept out of the page's cached worst, the second is in it."""
    pages = {p["page"]: p for p in measured["pages"]}
    dropout_p = pages[DROPOUT]["widgets"]["dropout_p"]
    assert dropout_p["computes"] and "DROPOUT_TRACES" in dropout_p["computed"]
    assert all("DROPOUT_TRACES" in x["computed"] for x in dropout_p["samples"])  # new p each time
    assert dropout_p["cached_median_s"] is None and "dropout_p" in pages[DROPOUT]["computing"]
    assert pages[DROPOUT]["cached_worst_widget"] not in pages[DROPOUT]["computing"]
    head = pages[ATTENTION]["widgets"]["attention_head"]
    assert not head["computes"] and all(x["computed"] == [] for x in head["samples"])
    assert head["cached_median_s"] == head["server_median_s"]
    assert pages[ATTENTION]["cached_worst_widget"] == "attention_head"
    assert pages[ATTENTION]["cached_worst_s"] == head["server_median_s"]
    table = pb.markdown(measured)
    assert "dropout_p" in table and "† (" in table and "| cached (ms) |" in table
    targets = bench_run.page_targets(measured)
    assert any("on cached data" in t["target"] for t in targets)


TEXT_SETTER_APP = """
import streamlit as st

ss = st.session_state
ss.setdefault("text", "the benchmark text")
ss["body_runs"] = ss.get("body_runs", 0) + 1


def _load():
    ss["text"] = "another text: " + ss["setter"]


st.selectbox("A preset with a value", ["x", "y"], key="setter", on_change=_load)
st.toggle("A view", key="view")
"""


def test_a_widget_that_replaces_the_text_is_dropped_and_the_page_reopened() -> None:
    page = pb._Page("setter", "", "", {"errors": [], "widgets": {}})
    page.factory = lambda: AppTest.from_string(TEXT_SETTER_APP, default_timeout=30)
    with pb.timed_apptest():
        page.open()
        first = page.at
        page.interact("setter", 0)
        assert page.at is not first  # a new session on the benchmark text
        assert page.at.session_state["text"] == "the benchmark text"
        assert page.at.session_state["body_runs"] == 1
        page.interact("view", 0)
    widgets = page.row["widgets"]
    assert "setter" in page.dropped and not widgets["setter"]["samples"]
    assert "replaced the page's text" in widgets["setter"]["dropped"]
    assert widgets["view"]["samples"][0]["changed"]


def test_with_every_lazy_section_open_their_widgets_are_moved_too() -> None:
    """`open_sections`: the sections' own controls (Attention's query picker, Dropout's number
    of masks) are exercised as well, and the page then holds more figures."""
    closed = pb.measure_pages(rounds=1, pages=[ATTENTION, DROPOUT])
    opened = pb.measure_pages(rounds=1, pages=[ATTENTION, DROPOUT], open_sections=True)
    assert opened["open_sections"] and not closed["open_sections"]
    for before, after in zip(closed["pages"], opened["pages"], strict=True):
        assert not after["errors"], after["errors"]
        assert set(after["exercised"]) > set(before["exercised"])
        assert after["charts"] > before["charts"]
    assert "attention_pos" in opened["pages"][0]["exercised"]
    assert "dropout_n" in opened["pages"][1]["exercised"]
