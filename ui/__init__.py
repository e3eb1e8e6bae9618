"""Inside GPT's Streamlit layer (the frame every page calls first); see ui/frame.py."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (DESIGN.md)
