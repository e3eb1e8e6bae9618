"""Inside GPT: the entrypoint and the home page.

Run with `streamlit run app.py`. Streamlit runs this file for the home page and the files in
`pages/` for the stages; every one of them first calls the shared frame, `ui.frame.frame`, whose
contract `ui/__init__.py` states. Home and pages import the same `ui` modules, so they share one
set of caches (every cache lives in `ui.cache`) and one session state.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.checkpoints import BUNDLED_DIR, CheckpointError
from ui.cache import load_model
from ui.frame import frame
from ui.home import flowchart, model_card_rows
from ui.i18n import _
from ui.lecture import in_sidebar
from ui.models import model_label
from ui.settings import PAGE_ICON
from ui.stages import STAGES
from ui.state import View
from ui.text import markdown_literal


def intro(view: View | None) -> None:
    """The title, what the app does, and the flowchart of the stages."""
    st.title(f"{PAGE_ICON} Inside GPT")
    st.markdown(
        _(
            "Type a text and watch a real GPT read it: this app runs a small GPT-2-architecture "
            "model on your words, offline, and shows every number it computes along the way. "
            "The pages follow the seed article's flowchart, from tokens and embeddings through "
            "every head's attention, the feed-forward block, layer norm, the residual stream "
            "and dropout, to the probabilities of the next word. "
            "Where the article differs from a real GPT, the page shows both, side by side."
        )
    )
    flowchart(view.trace.config.n_layer if view is not None else None)
    st.page_link(
        STAGES[0].path, label=_("Start the walk: {stage}").format(stage=STAGES[0].label), icon="▶️"
    )
    st.caption(
        _(
            "The article draws attention → feed-forward → layer norm → residual (post-norm); "
            "GPT-2 and GPT-3 normalise first: {first}, then {second}."
        ).format(first="x + attn(ln₁(x))", second="x + mlp(ln₂(x))")
    )


def model_section(view: View | None) -> None:
    """The model card as a table, with the full MODEL_CARD.md of the bundled model."""
    st.header(_("The model"))
    model_id = st.session_state["model_id"]
    try:
        loaded = view.loaded if view is not None else load_model(model_id)
    except (CheckpointError, OSError):
        return  # the frame has said why
    left, right = st.columns([3, 2])
    # st.table renders every cell and header as Markdown: the model's name (a models-folder
    # name, a Hub id) and the card's values come from files, so each is escaped (issue 20 f).
    rows = [(field, markdown_literal(value)) for field, value in model_card_rows(loaded)]
    left.table(
        pd.DataFrame(rows, columns=[_("Model"), markdown_literal(model_label(loaded.name))]),
        hide_index=True,
    )
    if loaded.name == "random":
        right.info(
            _(
                "This is the untrained model: the same architecture with random weights. "
                "Switch to **bundled** {where} to compare before and after learning."
            ).format(where=in_sidebar())
        )
    card_md = BUNDLED_DIR / "MODEL_CARD.md"
    if loaded.source == str(BUNDLED_DIR) and card_md.is_file():
        with right.expander(_("The full model card (MODEL_CARD.md)"), expanded=False):
            st.markdown(card_md.read_text(encoding="utf-8"))
    if view is not None:
        right.metric(_("Tokens in your text"), view.trace.n_tokens)


def main() -> None:
    """The home page: the frame first, then the introduction and the model."""
    view = frame("home")
    intro(view)
    model_section(view)


if __name__ == "__main__":
    main()
