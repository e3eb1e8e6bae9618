"""Numbers derived from a Trace (and, where needed, the model's weights): one module per stage.

Pure functions; nothing here draws, and nothing imports Streamlit or `engine.figures`.
"""
