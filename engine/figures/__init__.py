"""Pure figure builders: arrays and labels in, plotly Figure (or an HTML string or a pandas table
for display) out. No `st.*` calls, no Trace, no stage maths: the numbers come from `engine.lens`.

One module per stage; shared colours and layout live in `engine.figures.common`.
"""
