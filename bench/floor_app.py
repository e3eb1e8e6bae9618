"""The floor page of the browser benchmark: one 256 x 256 plotly heatmap and nothing else.

`streamlit run bench/floor_app.py`; bench/browser_bench.py compares every app page with it.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

st.set_page_config(page_title="Floor", page_icon="📏", layout="wide")
z = np.random.default_rng(0).random((256, 256)).astype(np.float32)
st.plotly_chart(go.Figure(go.Heatmap(z=z, colorscale="Blues")), key="floor")
