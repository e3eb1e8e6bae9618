"""The home page's parts: the model card as table rows, and the article's flowchart as boxes
that open their stages. app.py puts them on the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from engine.checkpoints import LoadedModel
from ui.i18n import N_, _
from ui.lecture import in_sidebar
from ui.settings import APP_DIR, models_dir
from ui.stages import LAYER_STAGES, STAGE_BY_ID, STAGES, Stage
from ui.state import nav_params


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _validation_loss(loaded: LoadedModel) -> float | None:
    if loaded.card is not None and loaded.card.val_loss is not None:
        return loaded.card.val_loss
    state = Path(loaded.source) / "train_state.json"
    if state.is_file():
        try:
            history = json.loads(state.read_text(encoding="utf-8"))["state"]["history"]
            return float(history[-1]["val_loss"])
        except (KeyError, IndexError, TypeError, ValueError, json.JSONDecodeError):
            return None
    return None


LANGUAGE_NAMES = {"en": N_("English"), "zh": N_("Chinese")}


def _per_language_losses(loaded: LoadedModel) -> list[tuple[str, float, float]]:
    """(language code, validation loss, Kneser-Ney bigram loss) of each language a bilingual
    card measured (`inside_gpt.bilingual_card.report` in the model folder's config.json, written
    by `python -m engine card --corpus bilingual`), in nats per token; [] for any other model."""
    path = Path(loaded.source) / "config.json"
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        langs = raw["inside_gpt"]["bilingual_card"]["report"]["languages"]
        return [(g, float(r["val_loss"]), float(r["bigram_kn"])) for g, r in langs.items()]
    except (KeyError, TypeError, ValueError, OSError, json.JSONDecodeError):
        return []


# What the shipped model's card says it was trained on (`engine.__main__.BILINGUAL_TRAINED_ON`,
# written in English into its config.json), here so the home page can show it in the reader's
# language (tests/ui/test_home.py keeps the two equal).
BUNDLED_TRAINED_ON = N_(
    "English and Chinese: Shakespeare, the World English Bible, Debian documentation and "
    "Chinese manual pages, fortunes-zh, template stories (assets/corpus/bilingual.json)"
)


def model_card_rows(loaded: LoadedModel) -> list[tuple[str, str]]:
    """The model card as (field, value) rows for the home page, in the caller's language (the
    card's own free text, what it was trained on, stays as the card writes it, except the
    shipped model's, `BUNDLED_TRAINED_ON`, which is translated)."""
    cfg, card = loaded.config, loaded.card
    not_recorded = _("not recorded")
    rows = [
        (_("Layers (blocks)"), str(cfg.n_layer)),
        (_("Attention heads per layer"), str(cfg.n_head)),
        (_("Width of the residual stream (d_model)"), str(cfg.d_model)),
        (_("Width of one head (d_head)"), str(cfg.d_head)),
        (_("Feed-forward width"), str(cfg.d_mlp)),
        (_("Context (longest text it reads)"), _("{n} tokens").format(n=cfg.n_ctx)),
        (
            _("Vocabulary"),
            _("{n} tokens ({tokenizer})").format(
                n=_fmt_int(cfg.vocab_size), tokenizer=loaded.tokenizer.name
            ),
        ),
        (_("Parameters"), _fmt_int(cfg.n_params())),
        (_("Trained on"), _trained_on(card.trained_on) if card is not None else not_recorded),
    ]
    if card is not None and card.tokens_seen is not None:
        progress = _("{n} tokens").format(n=f"{card.tokens_seen:,}")
        if card.checkpoint_step is not None:
            if card.max_steps is not None:
                progress += _(", step {step} of {steps}").format(
                    step=f"{card.checkpoint_step:,}", steps=f"{card.max_steps:,}"
                )
            else:
                progress += _(", step {step}").format(step=f"{card.checkpoint_step:,}")
        rows.append((_("Training so far"), progress))
    per_language = _per_language_losses(loaded)
    for lang, loss, bigram in per_language:  # a bilingual card: one row per held-out split
        name = _(LANGUAGE_NAMES[lang]) if lang in LANGUAGE_NAMES else lang
        rows.append(
            (
                _("Validation loss, {language} (nats per token)").format(language=name),
                _("{loss} (Kneser-Ney bigram: {bigram})").format(
                    loss=f"{loss:.3f}", bigram=f"{bigram:.3f}"
                ),
            )
        )
    if not per_language:
        loss = _validation_loss(loaded)
        rows.append(
            (
                _("Validation loss (nats per token)"),
                f"{loss:.3f}" if loss is not None else not_recorded,
            )
        )
    source = _shown_source(loaded.source)
    rows.append((_("Weights from"), source))
    return rows


def _trained_on(text: str) -> str:
    """A card's "trained on" text, in the reader's language when it is the shipped model's."""
    return _(BUNDLED_TRAINED_ON) if text == BUNDLED_TRAINED_ON else text


def _shown_source(source: str) -> str:
    """Where the weights came from, without the server's paths (issue 20): relative to the app
    folder, or "models folder: NAME" for a folder of INSIDE_GPT_MODELS_DIR; an absolute path
    only for a folder outside both (typed into the path box, which only a private server
    offers), or the source as is when it is not a path ("untrained, ... seed 0")."""
    path = Path(source)
    if not path.is_absolute():
        return source
    resolved = path.resolve()
    if resolved.is_relative_to(APP_DIR):
        return str(resolved.relative_to(APP_DIR))
    folder = models_dir().resolve()
    if resolved.is_relative_to(folder):
        return _("models folder: {name}").format(name=str(resolved.relative_to(folder)))
    return source


# Flowchart boxes are narrow: their labels and notes wrap, but only between words. Latin text
# breaks at spaces (never inside a word, "Tok/ens", nor at a hyphen: the labels' hyphens are
# non-breaking, `_flow_label`); Chinese, which has no spaces, only where its catalogue marks a
# word boundary with U+200B (a zero-width space) and at punctuation (`word-break: keep-all`):
# "把每个块的输出/加到残差流上", not "把每个块的输/出加到残差流/上". Never cut with "…".
_FLOW_CSS = (
    "<style>[class*='st-key-flow_'] [data-testid='stPageLink'] span"
    "{white-space:normal !important;overflow:visible !important;font-weight:600}"
    "[class*='st-key-flow_'] *{word-break:keep-all !important;overflow-wrap:normal !important}"
    "</style>"
)
# One flowchart box, in pixels: a row of boxes wraps onto a second line where the page is too
# narrow for it (1024 px with the sidebar open) instead of squeezing every box. The framed row
# of five boxes and four arrows (18 px) must fit its 808 px in lecture mode at 1024 px and
# 847 px at 1400 px with the sidebar open (measured in Chromium): 144 px, whose text is 108 px
# wide, 6 Chinese characters a line (`tests/ui/test_home.py` keeps every Chinese note's words
# within that).
FLOW_BOX_PX = 144
NB_HYPHEN = "\u2011"  # a hyphen the line never breaks at ("Feed-/forward")


def _flow_label(stage: Stage) -> str:
    """A flowchart box's label, "4 · Feed‑forward", its hyphens non-breaking."""
    return f"{stage.number} · {_(stage.short_title)}".replace("-", NB_HYPHEN)


def _flow_box(col: Any, stage: Stage) -> None:
    """One flowchart box: the stage's link (or its name, if the page is absent) and note."""
    with col.container(border=True, key=f"flow_{stage.id}", width=FLOW_BOX_PX, height="stretch"):
        label = _flow_label(stage)
        if stage.exists():
            st.page_link(stage.path, label=label, query_params=nav_params(), width="stretch")
        else:
            st.markdown(f"**{label}**")
        st.caption(_(stage.note))


def _flow_row(stage_ids: tuple[str, ...]) -> None:
    """Boxes joined by arrows, left to right, wrapping onto another line where the page is
    narrow (a horizontal `st.container`)."""
    if not stage_ids:
        return
    row = st.container(
        horizontal=True,
        wrap=True,
        vertical_alignment="center",
        gap=None,
        key=f"flowrow_{stage_ids[0]}",
    )
    for k, sid in enumerate(stage_ids):
        if k > 0:
            row.markdown("&nbsp;**→**&nbsp;", width="content")
        _flow_box(row, STAGE_BY_ID[sid])


def flowchart(n_layer: int | None) -> None:
    """The article's flowchart as boxes, top to bottom; every box opens its stage. The stages
    before and after the per-layer ones get a row each; the per-layer ones a framed row."""
    first = [s.id for s in STAGES].index(LAYER_STAGES[0])
    before = tuple(s.id for s in STAGES[:first])
    after = tuple(s.id for s in STAGES[first + len(LAYER_STAGES) :])
    st.html(_FLOW_CSS)
    _flow_row(before)
    if n_layer:
        repeated = _("the same block, repeated in every layer × {n} layers").format(n=n_layer)
    else:
        repeated = _("the same block, repeated in every layer")
    st.markdown(f"↓ &nbsp; **{repeated}**")
    with st.container(border=True):
        _flow_row(LAYER_STAGES)
        st.caption(
            _(
                "↻ back to {first} for the next layer; after the last layer, on to the output ↓"
            ).format(first=STAGE_BY_ID[LAYER_STAGES[0]].number)
        )
    with st.container(border=True, key="order_compare"):
        st.markdown(_("**GPT-2's real order in every block (pre-norm)**, beside the article's:"))
        st.markdown(_order_lines())
        st.caption(
            _(
                "Red: what moves or is added in GPT-2 and GPT-3. Layer norm comes first: "
                "x = x + dropout(attn(ln₁(x))), then x = x + dropout(mlp(ln₂(x))); after the "
                "last block a final ln_f, then the output. The article puts layer norm after "
                "the feed-forward block and the residual add after that (post-norm, as in the "
                "2017 Transformer). The walk can follow either order: “Walk order” {where}."
            ).format(where=in_sidebar())
        )
    _flow_row(after)


def _order_lines() -> str:
    """The block in the article's order and in GPT-2's, one line each (Markdown), with what
    moves or is added in GPT-2 marked in red."""
    title = {sid: _(STAGE_BY_ID[sid].short_title) for sid in LAYER_STAGES}

    def moved(text: str) -> str:
        return f":red[**{text}**]"

    article = " → ".join(title[sid] for sid in LAYER_STAGES)
    gpt = " → ".join(
        [
            moved(_("{ln} (ln₁, moved first)").format(ln=title["layer_norm"])),
            title["attention"],
            moved(title["dropout"]),
            moved(_("{res} (add)").format(res=title["residual"])),
            moved(_("{ln} (ln₂)").format(ln=title["layer_norm"])),
            title["feed_forward"],
            moved(title["dropout"]),
            moved(_("{res} (add)").format(res=title["residual"])),
        ]
    )
    return "\n".join(
        [
            _("- **The article (post-norm):** {steps}").format(steps=article),
            _("- **GPT-2 (pre-norm):** {steps}; after the last block {ln_f} → output").format(
                steps=gpt, ln_f=moved("ln_f")
            ),
        ]
    )
