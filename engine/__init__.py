"""Inside GPT's engine: a GPT-2 decoder, its Trace capture, the lens (numbers) and figures (plots),
with no Streamlit. `python -m engine --help` for the command line.

Importing the package sets OMP_WAIT_POLICY=PASSIVE unless it is already set: every entry point
(the app, its pages, the command line, tests) imports the engine before torch, and with the
default OpenMP policy idle threads spin-wait and stall each other on a busy machine (measured:
0.84 s vs 59 ms for one forward pass at 2 threads; DESIGN.md "Threads")."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch
