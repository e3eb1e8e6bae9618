"""Colours, fonts and layout shared by every figure (sized for a projector)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

FONT_SIZE = 16
TITLE_SIZE = 20
# Sequential scale for weights in [0, 1] (attention, probabilities).
SCALE_WEIGHTS = "Blues"
# Diverging scale for signed activations, centred on 0.
SCALE_SIGNED = "RdBu_r"
# Qualitative colours for token chips and lines.
PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#EECA3B",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
)
# Largest number of cells along one axis that a heatmap sends to the browser; bigger arrays are
# shown as a window (pages offer a control to move it).
MAX_AXIS = 256


def base_layout(fig: go.Figure, title: str, height: int = 480) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": TITLE_SIZE}},
        font={"size": FONT_SIZE},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
        template="plotly_white",
    )
    return fig


def finite_or_none(values: np.ndarray) -> np.ndarray:
    """A float array for plotly: -inf / inf / nan (e.g. masked attention scores) become None,
    which plotly draws as a gap and JSON can carry."""
    out = np.asarray(values, dtype=object)
    mask = ~np.isfinite(np.asarray(values, dtype=np.float64))
    out[mask] = None
    return out


def unique_labels(labels: list[str] | tuple[str, ...]) -> list[str]:
    """Plotly merges equal category labels on an axis; make each token label unique by
    prefixing its position ("3:␣the")."""
    return [f"{i}:{s}" for i, s in enumerate(labels)]
