"""Inside GPT: the home page. Run with `streamlit run app.py`; the frame lives in `ui/`."""

from ui.frame import render_home

render_home()
