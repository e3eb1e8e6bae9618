"""Pure figure builders: (Trace or arrays, selection) -> plotly Figure. No `st.*` calls here.

One module per stage; shared colours and layout live in `engine.figures.common`.
"""
