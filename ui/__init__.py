"""Inside GPT's Streamlit layer: everything the app does except drawing the pages themselves.

Modules: `settings` (the operator's environment variables, fixed limits), `text` (presets,
cleaning, the one Markdown escaper), `models` (which models are offered, loading, the tokenizer
and weights a page reads), `cache` (every cache), `state` (shared session state, query
parameters, `View`), `stages` (THE stage table and the walk), `frame` (the frame and sidebar),
`widgets` (controls in a page body), `home` (the home page's parts), `intervene` (page 10's
presets, link values and caches of its interventions). Import rule:
pages -> ui -> engine; engine imports no Streamlit.

The frame contract (pages rely on it):

- `ui.frame.frame(stage_id) -> View | None`: page config, sidebar (navigation, text with
  presets, model, layer/head/position steppers), query parameters read and written, the model
  and the Trace loaded from caches, notices. None means there is no usable text: the page calls
  `st.stop()`.
- Shared values live in non-widget session_state keys "text", "ids", "model_id", "layer",
  "head", "pos" (`ui.state.SHARED_KEYS`); widgets use their own keys (prefixed "_w_") and copy
  into the shared keys. "ids" are the token ids the text was decoded from (Generate), analysed
  instead of the text re-read while they still decode to it (`ui.state.shared_ids`).
- `ui.cache.get_head_scores(view)`, `get_layer_summary(view)` (every layer's per-token
  numbers for the Feed-forward, Layer-norm and Residual pages), `get_all_ln_stats(view)`,
  `get_token_groups(view)` and `get_encode_steps(view)` are cached per (model, tokens, text);
  `get_logit_lens(view, positions)` per (model, tokens, text, block of 16 positions),
  computing only the blocks that hold `positions`;
  `get_dropout_trace(view, p, seed, layer)` and `get_last_logits(view, text, ids)` per their
  arguments too.
- `ui.widgets.next_stage(view)` draws the Previous / Next controls at the bottom of a page.
- `ui.widgets.lazy_section(label, key, draw)`: a section computed only while open; its key is
  "<stage>_sec_<id>" with <id> listed in the page's `Stage.sections` (`ui.stages`), which is
  what the link's `open=<id>,<id>` names (`ui.state.adopt_open_param`, `open_params`).
- `ui.state.set_text(text, ids=None)` replaces the shared text (Generate appends tokens with
  it, passing the ids).
- `ui.widgets.bounded_input(kind, label, lo, hi, value, key=...)` builds every slider and
  number input sized from a model or a text (a caption when lo == hi).

Environment variables (set by the operator, never by a page): see `ui.settings`.
"""
