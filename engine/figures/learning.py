"""The Learning page (issue 18): the bundled model's recorded loss curves and head scores over
its training steps, with the phase change marked. Pure builders: arrays in, plotly figures out;
the numbers come from `engine.snapshots.TrainingHistory` (recorded by the run, never computed
here). The attention map at a snapshot is `engine.figures.attention.pattern_heatmap`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from engine.figures.common import HIGHLIGHT, PALETTE, spec_figure, subplots_spec, update_axes
from engine.figures.text import _

BAND_COLOUR = "rgba(230, 159, 0, 0.18)"  # the phase change: PALETTE's orange, light
STEP_COLOUR = PALETTE[8]  # the step shown below (the slider's): dark grey


def _marks(
    band: tuple[int, int] | None, band_label: str, step: int | None, rows: int = 0
) -> tuple[list[dict], list[dict]]:
    """The shapes and annotations (plotly dicts) that shade the phase change `band` [start, end]
    (steps), write `band_label` at its left (top of the first panel), and draw a dotted
    vertical line at `step` (None: none), on every panel (`rows`: the number of stacked
    panels; 0 for a figure without subplots)."""
    refs = (
        [("x", "y")]
        if not rows
        else [(f"x{r}" if r > 1 else "x", f"y{r}" if r > 1 else "y") for r in range(1, rows + 1)]
    )
    shapes: list[dict] = []
    for xref, yref in refs:
        if band is not None:
            shapes.append(
                {
                    "type": "rect",
                    "xref": xref,
                    "yref": f"{yref} domain",
                    "x0": band[0],
                    "x1": band[1],
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": BAND_COLOUR,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
        if step is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": xref,
                    "yref": f"{yref} domain",
                    "x0": step,
                    "x1": step,
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": "dot", "color": STEP_COLOUR, "width": 2},
                }
            )
    annotations = []
    if band is not None:
        annotations.append(  # left of the band, at the top: the curves there sit lower
            {
                "x": band[0],
                "y": 1.0,
                "xref": "x",
                "yref": "y domain" if rows else "paper",
                "xanchor": "right",
                "yanchor": "top",
                "text": band_label + " →",
                "showarrow": False,
                "font": {"size": 13, "color": "#8a5a00"},
            }
        )
    return shapes, annotations


def loss_curves(
    eval_steps: np.ndarray,
    eval_loss: dict[str, np.ndarray],
    val_steps: np.ndarray,
    val_loss: dict[str, np.ndarray],
    names: dict[str, str],
    title: str,
    *,
    band: tuple[int, int] | None = None,
    band_label: str = "",
    step: int | None = None,
) -> go.Figure:
    """Held-out loss (nats per token) over training steps, one colour per language: the
    snapshot evaluations `eval_loss` [S] at `eval_steps` (solid, markers) and the in-training
    estimates `val_loss` [K] at `val_steps` (dotted). `names`: language code -> its name.
    Written as one dict and built once (`spec_figure`)."""
    hover = _("step %{x:,}<br>loss %{y:.3f}") + "<extra></extra>"
    data: list[dict] = []
    for i, (lang, loss) in enumerate(eval_loss.items()):
        colour = PALETTE[i % 8]
        name = names.get(lang, lang)
        data.append(
            {
                "type": "scatter",
                "x": eval_steps,
                "y": loss,
                "mode": "lines+markers",
                "marker": {"size": 5},
                "line": {"color": colour, "width": 3},
                "name": _("{language}: snapshot evaluation").format(language=name),
                "hovertemplate": hover,
            }
        )
        if lang in val_loss:
            data.append(
                {
                    "type": "scatter",
                    "x": val_steps,
                    "y": val_loss[lang],
                    "mode": "lines",
                    "line": {"color": colour, "width": 2, "dash": "dot"},
                    "name": _("{language}: estimate during training").format(language=name),
                    "hovertemplate": hover,
                }
            )
    shapes, annotations = _marks(band, band_label, step)
    layout: dict = {
        "xaxis": {"title": {"text": _("training step")}},
        "yaxis": {"title": {"text": _("loss (nats per token)")}},
        "legend": {"orientation": "h", "y": -0.25, "x": 0},
        "margin": {"b": 110},
        **({"shapes": shapes} if shapes else {}),
        **({"annotations": annotations} if annotations else {}),
    }
    return spec_figure({"data": data, "layout": layout}, title, 440)


def head_score_curves(
    steps: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray]],
    chosen: tuple[int, int],
    title: str,
    *,
    band: tuple[int, int] | None = None,
    band_label: str = "",
    step: int | None = None,
) -> go.Figure:
    """One panel per score, stacked and sharing the step axis: `panels` is (panel title,
    scores [S, n_layer, n_head] in [0, 1] at `steps` [S]). One line per head, named "L.H";
    the `chosen` (layer, head) thick and in the highlight colour, the others thin. Written as
    one dict and built once (`spec_figure`: GPT-2 small's 144 heads are 288 lines)."""
    spec, ref = subplots_spec(
        [name for name, _scores in panels],
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
    )
    for row, (_name, scores) in enumerate(panels, start=1):
        scores = np.asarray(scores)
        n_layer, n_head = scores.shape[1:]
        for layer in range(n_layer):
            for head in range(n_head):
                here = (layer, head) == chosen
                k = layer * n_head + head
                name = _("head {layer}.{head}").format(layer=layer, head=head)
                spec["data"].append(
                    {
                        "type": "scatter",
                        "x": steps,
                        "y": scores[:, layer, head],
                        "mode": "lines",
                        "line": {
                            "color": HIGHLIGHT if here else PALETTE[k % 8],
                            "width": 4 if here else 1.5,
                        },
                        "opacity": 1.0 if here else 0.7,
                        "name": name,
                        "legendgroup": f"{layer}.{head}",
                        "showlegend": row == 1,
                        "hovertemplate": name
                        + _("<br>step %{x:,}<br>score %{y:.3f}")
                        + "<extra></extra>",
                        **ref[row - 1][0][0].trace_kwargs,
                    }
                )
    layout = spec["layout"]
    update_axes(layout, y={"range": [0, 1.02]})
    last = ref[len(panels) - 1][0][0].layout_keys[0]  # the bottom panel's x axis
    layout[last]["title"] = {"text": _("training step")}
    shapes, annotations = _marks(band, band_label, step, rows=len(panels))
    if shapes:
        layout["shapes"] = shapes
    if annotations:
        layout["annotations"] = layout.get("annotations", []) + annotations
    return spec_figure(spec, title, 260 + 220 * len(panels))
