"""engine.figures.common: escaping, labels, windows and the shared heatmap."""

from __future__ import annotations

import numpy as np
import pytest

from engine.figures import common
from tests.support import assert_validates_unchanged


def test_plotly_text_escapes_html_and_guards_latex() -> None:
    assert common.plotly_text("<E4>") == "&lt;E4&gt;"
    assert common.plotly_text("a&b") == "a&amp;b"
    assert common.plotly_text("$x$") == "\u200b$x$"
    assert common.plotly_text("␣the") == "␣the"


def test_token_labels_are_unique_and_safe() -> None:
    labels = common.token_labels(["a", "a", "<br>"])
    assert labels == ["0:a", "1:a", "2:&lt;br&gt;"]
    assert len(set(labels)) == 3
    assert common.token_labels(["x", "y", "z"], 1, 3) == ["1:y", "2:z"]


def test_window_is_clamped_and_at_most_max_axis() -> None:
    assert common.window(10, 5, size=4) == slice(5, 9)
    assert common.window(10, 9, size=4) == slice(6, 10)
    assert common.window(10, -3, size=4) == slice(0, 4)
    assert common.window(3, 2, size=4) == slice(0, 3)
    assert common.window(1000, 0) == slice(0, common.MAX_AXIS)


def test_heatmap_turns_masked_scores_into_none() -> None:
    z = np.array([[1.0, -np.inf], [0.5, 2.0]])
    fig = common.heatmap(
        z, ["a", "b"], ["c", "d"], "t", signed=True, x_title="", y_title="", hovertemplate=""
    )
    assert fig.data[0].z[0][1] is None
    assert fig.data[0].z[1][1] == 2.0
    assert fig.data[0].zmin == -2.0 and fig.data[0].zmax == 2.0
    assert_validates_unchanged(fig)  # built without validation: masked cells, signed scale
    weights = common.heatmap(
        np.eye(2),
        ["a", "b"],
        ["c", "d"],
        "t",
        signed=False,
        x_title="",
        y_title="",
        hovertemplate="",
        customdata=np.array([["p", "q"], ["r", "s"]], dtype=object),
        zmax=1.0,
    )
    assert_validates_unchanged(weights)


# --- the one figure style (issue 15) -----------------------------------------------------------


def test_category_ticks_draws_every_label_up_to_64_then_evenly_spaced() -> None:
    from engine.figures.common import MAX_LABELLED, category_ticks

    labels = [f"{i}:tok" for i in range(MAX_LABELLED)]
    ticks = category_ticks(labels)
    assert ticks["tickvals"] == labels and ticks["tickangle"] == -90
    many = [f"{i}:tok" for i in range(130)]
    every = category_ticks(many)["tickvals"]
    assert every == many[::3] and len(every) <= MAX_LABELLED  # ceil(130 / 64) = 3
    long = category_ticks(["0:" + "x" * 40])["ticktext"][0]
    assert long == "0:" + "x" * 9 + "…"


def test_log_ticks_are_plain_numbers_from_below_the_data_to_above_it() -> None:
    from engine.figures.common import log_ticks

    ticks = log_ticks(1, 300)  # 300 lies past 200: a tick at 500 closes the axis
    assert ticks["tickvals"] == [1, 2, 5, 10, 20, 50, 100, 200, 500]
    assert ticks["ticktext"] == ["1", "2", "5", "10", "20", "50", "100", "200", "500"]
    assert ticks["range"][0] < 0 < np.log10(500) < ticks["range"][1]
    wide = log_ticks(1e-6, 1.0)["ticktext"]  # six decades: powers of ten only
    assert wide == ["1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1"]
    # the layer-norm growth chart's case: the smallest std (0.21) sat under the lowest label
    assert log_ticks(0.21, 2.3)["ticktext"] == ["0.2", "0.5", "1", "2", "5"]
    # a short span gets evenly spaced labels, not two far outside the data
    assert log_ticks(0.31, 0.47)["ticktext"] == ["0.3", "0.35", "0.4", "0.45", "0.5"]
    assert log_ticks(1.0, 1.0)["ticktext"] == ["0.5", "1", "2"]  # one value: a span around it
    # sixty decades: every tenth power
    assert log_ticks(3e-30, 2e29)["ticktext"] == [
        "1e-30", "1e-20", "1e-10", "1", "1e+10", "1e+20", "1e+30"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        log_ticks(0.0, 1.0)
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        log_ticks(2.0, 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_log_ticks_cover_every_range_with_a_tick_at_or_past_each_end(seed: int) -> None:
    """Any data range from 1e-300 to 1e300, extremes and powers of ten included: the first tick
    at or below the smallest value, the last at or above the largest, inside the axis range,
    at most a dozen, each label the tick's own number."""
    from engine.figures.common import log_ticks

    rng = np.random.default_rng(seed)
    exps = rng.uniform(-300, 300, size=(400, 2))
    spans = [tuple(10.0 ** np.sort(e)) for e in exps]
    spans += [(10.0**a, 10.0**a * f) for a in rng.integers(-300, 300, 50) for f in (1, 1.0001, 3)]
    spans += [(1e-300, 1e300), (1e-307, 1e308), (0.999, 1.001), (1e-3, 1e-3), (7.0, 7.0)]
    spans += [(1.0, 1.0 + 1e-15), (0.3 - 1e-16, 0.3), (1.0, 1.0 + 1e-9), (0.5, 0.50005)]
    spans += [(9.9999, 10.0), (0.99999, 1.0001), (123.45, 123.47)]
    for lo, hi in spans:
        ticks = log_ticks(lo, hi)
        vals = ticks["tickvals"]
        assert vals[0] <= lo and vals[-1] >= hi, (lo, hi, vals)
        assert vals == sorted(set(vals)) and 2 <= len(vals) <= 13, (lo, hi, vals)
        assert [float(t) for t in ticks["ticktext"]] == pytest.approx(vals, rel=1e-9)
        assert len(set(ticks["ticktext"])) == len(vals)  # no label twice
        low, high = ticks["range"]
        assert low < np.log10(vals[0]) and np.log10(vals[-1]) < high, (lo, hi, ticks["range"])


def test_readable_sets_every_text_size_and_colour() -> None:
    import plotly.graph_objects as go

    from engine.figures.common import TEXT_COLOUR, heatmap, readable

    labels = [f"{i}:t" for i in range(30)]
    fig = heatmap(
        np.zeros((30, 30)),
        labels,
        labels,
        "t",
        signed=True,
        x_title="k",
        y_title="q",
        hovertemplate="",
        height=300,
    )
    fig.add_annotation(text="small", font={"size": 9, "color": "#D55E00"}, x=0, y=0)
    fig = readable(fig, lecture=True)
    assert fig.layout.xaxis.tickfont.size == 20 and fig.layout.yaxis.tickfont.size == 20
    assert fig.layout.xaxis.tickfont.color == TEXT_COLOUR
    assert list(fig.layout.yaxis.tickvals) == labels
    assert fig.layout.height >= 170 + 30 * 24  # a row per label
    assert fig.data[0].colorbar.tickfont.size == 20
    note = fig.layout.annotations[0]
    assert note.font.size == 20 and note.font.color == "#D55E00"  # its colour kept
    line = go.Figure(go.Scatter(x=[1, 10, 100], y=[1, 2, 3]))
    line.update_xaxes(type="log")
    line = readable(line)
    assert line.layout.xaxis.tickfont.size == 16
    assert list(line.layout.xaxis.ticktext) == ["1", "2", "5", "10", "20", "50", "100"]


def test_readable_reads_numpy_data_as_numbers_not_categories() -> None:
    """`fig.to_dict()` writes a numpy array as a typed-array dict: its keys must not be taken
    for category labels, and a log axis's extent is read from its decoded values."""
    import plotly.graph_objects as go

    from engine.figures.common import readable

    bars = readable(go.Figure(go.Bar(x=np.arange(5, dtype=np.float32), y=np.ones(5))))
    assert bars.layout.xaxis.tickmode is None and bars.layout.xaxis.tickvals is None
    line = go.Figure(go.Scatter(x=np.array([1.0, 10.0, 100.0]), y=np.array([1.0, 2.0, 3.0])))
    line.update_xaxes(type="log")
    line = readable(line)
    assert list(line.layout.xaxis.ticktext) == ["1", "2", "5", "10", "20", "50", "100"]


@pytest.mark.parametrize(
    "grid",
    [
        {"rows": 3, "cols": 4, "horizontal_spacing": 0.04, "vertical_spacing": 0.12},
        {"rows": 4, "cols": 1, "shared_xaxes": True, "vertical_spacing": 0.07},
        {"rows": 1, "cols": 3, "shared_yaxes": True, "horizontal_spacing": 0.03},
    ],
)
def test_subplots_is_make_subplots_and_its_figures_are_independent(grid: dict) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from engine.figures.common import subplots

    n = grid["rows"] * grid["cols"]
    for titles in ([f"panel {i}<br>role" for i in range(n)], [f"第 {i} 个" for i in range(n)]):
        ours, theirs = subplots(titles, **grid), make_subplots(subplot_titles=titles, **grid)
        assert ours.to_dict() == theirs.to_dict()
        for fig in (ours, theirs):
            fig.add_trace(go.Bar(y=[1, 2]), row=grid["rows"], col=grid["cols"])
            fig.layout.annotations[0].text = "changed"
        assert ours.to_dict() == theirs.to_dict()  # the same axes for the same row and col
    assert subplots([str(i) for i in range(n)], **grid).layout.annotations[0].text == "0"


@pytest.mark.parametrize(
    "text",
    [
        "Size of the residual stream, token by token (log colour)",
        "对数几率透镜：每一层对下一个词元的最佳猜测（每层都应用 ln_f）",
        "2. 归一化：(x − mean) / sqrt(var + eps)  （均值 -0.000，标准差 1.000）",
        "Layer 0, <b>head 3</b>: induction<br>second line that is long enough to wrap",
        "short",
        "",
        "p(x < 3) and a<b, then 1 <= 2 > 0 in a title long enough to be wrapped twice",
    ],
)
def test_wrap_text_fits_every_line_and_keeps_every_word(text: str) -> None:
    from engine.figures.common import text_width_px, wrap_text

    for max_px in (120, 250, 440):
        wrapped = wrap_text(text, max_px, 20)
        lines = wrapped.split("<br>")
        for line in lines:
            words = line.split()
            # a line is within the width unless it is a single word longer than the width
            assert text_width_px(line, 20) <= max_px or len(words) == 1, (max_px, line)
            assert line == line.strip()
            assert not line.startswith(("，", "。", "：", "）")), (
                line
            )  # no closing punctuation first
            assert not line.endswith(("（", "“")), line  # nor opening punctuation last
        # the same characters in the same order: only spaces became breaks
        assert "".join(wrapped.replace("<br>", "").split()) == "".join(
            text.replace("<br>", "").split()
        )
        assert wrapped.count("<b>") == text.count("<b>")


def test_readable_wraps_titles_to_the_width_it_is_drawn_in() -> None:
    import plotly.graph_objects as go

    from engine.figures.common import COLUMN_PX, readable, text_width_px

    title = "What each layer's residual predicts as the next token, with ln_f applied"
    fig = go.Figure(go.Bar(y=[1, 2]), layout={"title": {"text": title}})
    assert readable(fig).layout.title.text == title  # no width given: left as it is
    narrow = readable(fig, width_px=COLUMN_PX)
    lines = narrow.layout.title.text.split("<br>")
    assert len(lines) >= 3 and all(text_width_px(s, 20) <= 0.9 * COLUMN_PX for s in lines)
    # its first line's baseline 8 px + 0.9 em from the figure's top (how plotly places a title
    # of several lines), in a top margin holding every line (26 px a line at 20 px)
    title, height = narrow.layout.title, narrow.layout.height or 450
    assert title.yref == "container" and (1 - title.y) * height == pytest.approx(8 + 18)
    assert narrow.layout.margin.t >= 8 + len(lines) * 26 + 12


def test_fit_height_keeps_a_wrapped_title_where_it_was_from_the_top() -> None:
    import plotly.graph_objects as go

    from engine.figures.common import COLUMN_PX, fit_height_spec, readable

    title = "What each layer's residual predicts as the next token, with ln_f applied"
    fig = readable(go.Figure(go.Bar(y=[1, 2]), layout={"title": {"text": title}, "height": 900}))
    spec = readable(fig, width_px=COLUMN_PX).to_dict()
    from_top = (1 - spec["layout"]["title"]["y"]) * spec["layout"]["height"]
    fit_height_spec(spec, 500)
    assert spec["layout"]["height"] == 500
    assert (1 - spec["layout"]["title"]["y"]) * 500 == pytest.approx(from_top)


def test_fit_height_thins_a_category_axis_to_rows_its_labels_fit() -> None:
    import plotly.graph_objects as go

    labels = [f"token {i}" for i in range(60)]
    fig = go.Figure(go.Heatmap(z=np.ones((60, 3)), y=labels), layout={"height": 1200})
    spec = common.readable(fig).to_dict()
    assert len(spec["layout"]["yaxis"]["ticktext"]) == 60  # 1,200 px: every row labelled
    common.fit_height_spec(spec, 400)
    shown = spec["layout"]["yaxis"]["ticktext"]
    assert spec["layout"]["height"] == 400 and 1 < len(shown) < 60
    # each drawn label has a row at least FONT_SIZE + 2 px tall in the 400 - 120 px left
    assert (400 - 120) / len(shown) >= common.FONT_SIZE + 2


def _figures_of_every_kind() -> list:
    """Figures with what the app's figures hold: numpy arrays of several dtypes (int64 that
    plotly narrows, float32, strings), lists of strings and of lists, arrays in the dicts of a
    list (the traces), keys plotly leaves unencoded ("range"), subplots, and a frame."""
    import plotly.graph_objects as go

    from engine.figures.attention import head_grid, pattern_heatmap
    from engine.figures.embeddings import pca_figure

    rng = np.random.default_rng(0)
    T = 40
    pattern = np.tril(rng.random((T, T))).astype(np.float32)
    pattern /= pattern.sum(-1, keepdims=True)
    tokens = [f"t{i}<&>" for i in range(T)]
    patterns = np.stack([pattern] * 4)
    coords = rng.normal(size=(T, 2)).astype(np.float32)
    bars = go.Figure(
        go.Bar(x=np.arange(5), y=np.array([1, 2, 3, 4, 500_000]), text=["a", "b", "c", "d", "e"]),
        layout={
            "xaxis": {"range": np.array([0.0, 5.0]), "tickvals": np.arange(5)},
            "annotations": [{"x": np.int64(1), "y": 2, "text": "<b>x</b>"}],
        },
    )
    strings = go.Figure(go.Scatter(x=np.array(["a", "b"]), y=(1.5, 2.5), customdata=[[1, "x"]]))
    framed = go.Figure(go.Scatter(y=[1, 2]), frames=[go.Frame(data=[go.Scatter(y=[2, 1])])])
    return [
        pattern_heatmap(pattern, pattern * 3 - 1, tokens, "One head"),
        head_grid(patterns, ["previous token", None, "induction", None], tokens, 1, 3, "Heads"),
        pca_figure(coords, np.array([0.5, 0.2]), tokens, "PCA", selected=2),
        bars,
        strings,
        framed,
    ]


def test_a_spec_figure_is_built_when_read_and_then_is_that_figure() -> None:
    import copy
    import pickle

    import plotly.graph_objects as go

    spec = {"data": [{"type": "bar", "y": np.arange(3)}], "layout": {}}
    fig = common.spec_figure(spec, "Bars", 300)
    assert isinstance(fig, common.SpecFigure) and "_unbuilt" in fig.__dict__
    assert common.figure_dict(fig)["layout"]["height"] == 300
    assert "_unbuilt" in fig.__dict__  # reading its dict did not build it
    fig.update_layout(height=200)  # builds it, then changes it
    assert "_unbuilt" not in fig.__dict__ and fig.layout.height == 200
    assert common.figure_dict(fig)["layout"]["height"] == 200  # the change is sent
    plain = go.Figure(common.spec_figure(spec, "Bars", 300).to_dict())
    for again in (
        pickle.loads(pickle.dumps(common.spec_figure(spec, "Bars", 300))),
        copy.deepcopy(common.spec_figure(spec, "Bars", 300)),
    ):  # as plotly pickles and copies a figure: the same figure, its arrays encoded
        assert type(again) is go.Figure and again.to_dict() == plain.to_dict()
        assert again.data[0].y == {"dtype": "i1", "bdata": "AAEC"}  # 0, 1, 2 as int8


@pytest.mark.parametrize("index", range(6))
def test_figure_dict_equals_plotlys_to_dict(index: int) -> None:
    import json

    import plotly.io as pio

    def parsed(spec: dict) -> dict:  # plotly's JSON, keys as a mapping (their order differs)
        return json.loads(pio.to_json(spec, validate=False))

    fig = _figures_of_every_kind()[index]
    got = parsed(common.figure_dict(fig))  # from its spec, if a SpecFigure not yet built
    expected = parsed(fig.to_dict())
    assert got == expected
    assert parsed(common.figure_dict(fig)) == expected  # built now
    assert parsed(fig.to_dict()) == expected  # the figure is left as it was


@pytest.mark.parametrize("index", range(6))
@pytest.mark.parametrize(("lecture", "width", "cap"), [(False, None, None), (True, 480, 300)])
def test_sent_figure_is_the_readable_figures_dict(
    index: int, lecture: bool, width: float | None, cap: int | None
) -> None:
    """What `ui.widgets.chart` sends (`sent_figure`) is what the readable figure, capped by
    `fit_height_spec`, gives as plotly's dict: same JSON (plotly's encoder; keys compared as
    a mapping, since the template is written in last), same height."""
    import json

    import plotly.graph_objects as go
    import plotly.io as pio

    fig = _figures_of_every_kind()[index]
    sent = common.sent_figure(fig, lecture=lecture, width_px=width, max_height=cap)
    plain = go.Figure(fig.to_dict())  # a figure plotly built and validated, not a SpecFigure
    expected = common.readable(plain, lecture=lecture, width_px=width).to_dict()
    if cap is not None:
        common.fit_height_spec(expected, cap, lecture)
    sent_json = json.loads(pio.to_json(sent, validate=False))
    assert sent_json == json.loads(pio.to_json(expected, validate=False))
    assert sent.layout.height == expected["layout"].get("height")
    assert sent.to_dict() is sent.to_dict()  # handed over as it is, not copied again


def test_shown_never_writes_none_nan_inf_or_a_negative_zero() -> None:
    assert common.shown(None) == common.NOT_MEASURABLE
    assert common.shown(float("nan")) == common.shown(float("inf")) == common.NOT_MEASURABLE
    assert common.shown(-0.0001, "{:.3f}") == "0.000"  # not "-0.000"
    assert common.shown(-0.0, "{:.2f}") == "0.00"
    assert common.shown(-0.0006, "{:.3f}") == "-0.001"  # a real negative keeps its sign
    assert common.shown(1.23456) == "1.23"


def test_wrap_text_breaks_chinese_at_punctuation_before_breaking_a_word() -> None:
    from engine.figures.common import wrap_text

    assert wrap_text("训练：掩码前", 83, 16) == "训练：<br>掩码前"  # not "训练：掩码" / "前"
    assert wrap_text("评估（恒等）", 83, 16) == "评估<br>（恒等）"  # not "评估（恒" / "等）"
    # a punctuation mark too near the start of the line is no place to break: the line fills
    assert wrap_text("甲，乙丙丁戊己庚辛壬癸子", 160, 16) == "甲，乙丙丁戊己庚辛壬<br>癸子"
    assert wrap_text("after the mask, survivors", 100, 16) == "after the<br>mask,<br>survivors"


def _dropout_like_panels(titles: tuple[str, ...], width_px: float, lecture: bool = False):
    """Three heatmap panels with token rows and one colour bar, like the dropout page's
    patterns figure, styled for a page `width_px` wide."""
    import numpy as np
    import plotly.graph_objects as go

    from engine.figures.common import readable, spec_figure, subplots_spec, token_labels

    words = "The| children| walk|ed| to| school| in| the| morning| and| played| in| the| park|."
    labels = token_labels(tuple(words.split("|")), 0, 15)
    spec, ref = subplots_spec(titles, rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.03)
    z = np.tril(np.ones((15, 15)))
    spec["data"] = [
        {"type": "heatmap", "z": z, "x": labels, "y": labels, "showscale": col == 2}
        | ref[0][col][0].trace_kwargs
        for col in range(3)
    ]
    spec["layout"]["yaxis"]["title"] = {"text": "查询词元"}
    fig: go.Figure = spec_figure(spec, "一个注意力头的注意力权重，dropout p = 0.05", 560)
    return readable(fig, lecture=lecture, width_px=width_px)


def test_readable_wraps_each_panel_title_to_its_panel_not_to_the_page() -> None:
    """At 1024 px with the sidebar open (a 500 px body), the dropout page's three panels were
    88 px wide each (Chromium: 135 px of row labels and axis title on their left, 70 px of
    colour bar on their right), but the middle panel's title was wrapped to the whole plot
    width and the outer ones to twice their distance from the edge: "…恒等映射训练模式…" ran
    together. Every line of a panel title now fits its panel."""
    from engine.figures.common import text_width_px

    titles = ("评估：dropout = 恒等映射", "训练模式：掩码之前", "掩码之后，幸存者 × 1.05")
    fig = _dropout_like_panels(titles, 500)
    for annotation in fig.layout.annotations:
        lines = annotation.text.split("<br>")
        assert all(text_width_px(s, 16) <= 88 for s in lines), lines
        assert "".join(lines).replace(" ", "") in {t.replace(" ", "") for t in titles}
    # wider (lecture mode's 900 px body, 20 px text): each fits on one line or two
    wide = _dropout_like_panels(titles, 900, lecture=True)
    assert [a.text.count("<br>") for a in wide.layout.annotations] == [1, 0, 1]


def test_a_one_line_title_is_pinned_above_one_line_panel_titles() -> None:
    """A one-line title over a top row of one-line panel titles was left where plotly puts it,
    in the middle of the 60 px top margin, across the panel titles (lecture mode's dropout
    figure): the title is pinned 8 px under the top and the margin holds both lines."""
    fig = _dropout_like_panels(("评估", "训练", "掩码"), 900, lecture=True)
    assert fig.layout.title.text.count("<br>") == 0
    assert all(a.text.count("<br>") == 0 for a in fig.layout.annotations)
    height = fig.layout.height
    assert fig.layout.title.yref == "container"
    assert (1 - fig.layout.title.y) * height == pytest.approx(12)
    # 8 px, the 24 px title's line (31 px), the 20 px panel titles' line (26 px), 12 px
    assert fig.layout.margin.t >= 8 + 31 + 26 + 12


def test_prose_number_writes_the_charts_minus_sign_and_never_a_negative_zero() -> None:
    from engine.figures.common import MINUS, prose_number

    assert MINUS == "\u2212"
    assert prose_number(-0.24, "{:.3f}") == "−0.240"
    assert prose_number(0.155, "{:.3f}") == "0.155"
    assert prose_number(0.12, "{:+.2f}") == "+0.12"
    assert prose_number(-0.5, "{:+.2f}") == "−0.50"
    assert prose_number(-1e-9, "{:.3f}") == "0.000"  # no "−0.000"
    assert prose_number(1.2e-5, "{:.1e}") == "1.2e−05"
    assert prose_number(None) == prose_number(float("nan")) == "–"
