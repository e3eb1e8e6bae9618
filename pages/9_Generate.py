"""Stage 9: generate text one token at a time (this page runs the model, through the engine)."""

from __future__ import annotations

import html
import logging

import pandas as pd
import streamlit as st

from engine.figures import output as fig_out
from engine.sampling import (
    MAX_TEMPERATURE,
    SampleStep,
    SamplingSettings,
    generate,
    next_token_distribution,
    sample_next,
)
from ui.cache import get_last_logits
from ui.frame import frame
from ui.i18n import _
from ui.models import decode_ids, encode_text
from ui.state import set_text, shared_ids
from ui.text import markdown_literal
from ui.widgets import bounded_input, chart, formatted, next_stage

log = logging.getLogger(__name__)

HISTORY = "generate_history"  # list of entries, newest last (see _record)
LAST_STEPS = "generate_last_steps"  # the SampleSteps of the latest action
PENDING_SEED = "generate_pending_seed"  # applied to the seed widget on the next run
MAX_N = 100


ss = st.session_state
if PENDING_SEED in ss:
    ss["generate_seed"] = ss.pop(PENDING_SEED)  # before the widget exists: allowed
ss.setdefault("generate_seed", 0)

view = frame("generate")
if view is None:
    st.stop()

trace, cfg = view.trace, view.trace.config
loaded = view.loaded
tokenizer, model = loaded.tokenizer, loaded.model
display = tokenizer.display
history: list[dict] = ss.setdefault(HISTORY, [])

st.title(_("9 · Generate"))
st.markdown(
    _(
        "A GPT writes one token at a time: it reads the whole text, takes the probabilities for "
        "the next token (page 8), **draws** one token from them, appends it, and reads again. "
        "Temperature, top-k and top-p reshape the probabilities before the draw; greedy always "
        "takes the most probable token. Every generated token is appended to the shared text, "
        "so all the other pages show the model reading its own output."
    )
)
st.latex(
    r"t_{n+1} \sim \mathrm{softmax}\!\left(\mathrm{logits}(t_1,\dots,t_n)/\tau\right)"
    r"\big|_{\text{top-}k,\ \text{top-}p}"
)

c1, c2, c3, c4, c5 = st.columns(5)
greedy = c5.checkbox(_("Greedy (argmax)"), key="generate_greedy")
temperature = bounded_input(
    "slider",
    _("Temperature τ"),
    0.1,
    float(MAX_TEMPERATURE),
    1.0,
    step=0.05,
    key="generate_temperature",
    where=c1,
    disabled=greedy,
)
top_k = int(
    bounded_input(
        "number",
        _("Top-k (0 = all)"),
        0,
        trace.n_valid_ids,
        40,
        key="generate_top_k",
        where=c2,
        disabled=greedy,
    )
)
top_p = bounded_input(
    "slider", "Top-p", 0.05, 1.0, 0.95, step=0.05, key="generate_top_p", where=c3, disabled=greedy
)
seed = int(c4.number_input(_("Seed"), 0, 2**31 - 1, step=1, key="generate_seed"))
settings = SamplingSettings(
    temperature=float(temperature), top_k=top_k, top_p=float(top_p), greedy=greedy
)


def context_ids(text: str) -> list[int]:
    """The token ids to continue: the shared ids the text was decoded from (generation's or a
    link's; exact, even when a character is still split across tokens) or the ids generation
    left if the text is unchanged since, else the text's own tokens."""
    shared = shared_ids(loaded)
    if shared is not None:
        return shared
    if history and history[-1]["after"] == text:
        return list(history[-1]["ids"])
    return encode_text(loaded, text)


def _action_name(action: str) -> str:
    """A history entry's action ("next token", "generate 10") in the reader's language."""
    if action == "next token":
        return _("next token")
    return _("generate {n}").format(n=action.rsplit(" ", 1)[-1])


def record(before: str, ids: list[int], steps: list[SampleStep], action: str) -> None:
    kept = [s for s in steps if s.token_id != tokenizer.eot_id]
    new_ids = ids + [s.token_id for s in kept]
    after = decode_ids(loaded, new_ids)
    history.append(
        {
            "before": before,
            "before_ids": ids,
            "after": after,
            "ids": new_ids,
            "action": action,
            "tokens": [(s.token_id, s.token_str, s.prob, s.seed) for s in steps],
        }
    )
    ss[LAST_STEPS] = steps
    log.info("%s: %d token(s) appended, seed %d", action, len(kept), seed)
    ss[PENDING_SEED] = seed + len(steps)
    ss["pos"] = None  # follow the newest token on every page
    set_text(after, ids=new_ids)


text = ss["text"]
b1, b2, b3, b4 = st.columns([2, 1, 2, 2], vertical_alignment="bottom")
n = int(b2.number_input("N", 1, MAX_N, 10, step=1, key="generate_n"))
if b1.button(_("Next token ▶"), key="generate_sample", type="primary"):
    ids = context_ids(text)
    step = sample_next(model, tokenizer, ids, settings, seed)
    record(text, ids, [step], "next token")
    st.rerun()
if b3.button(_("Generate {n} tokens ⏩").format(n=n), key="generate_many"):
    ids = context_ids(text)
    bar = st.progress(0.0, text=_("Generating {n} tokens…").format(n=n))

    def on_token(done: int, total: int, step: SampleStep) -> None:
        bar.progress(done / total, text=f"{done} / {total}: “{markdown_literal(step.token_str)}”")

    steps = generate(model, tokenizer, ids, n, settings, seed, callback=on_token)
    record(text, ids, steps, f"generate {n}")
    st.rerun()
if b4.button(
    _("↶ Undo the last step"),
    key="generate_undo",
    disabled=not history,
    help=_("Restore the text"),
):
    entry = history.pop()
    ss[LAST_STEPS] = []
    ss["pos"] = None
    set_text(entry["before"], ids=entry.get("before_ids"))
    st.rerun()

steps: list[SampleStep] = ss.get(LAST_STEPS) or []
if steps and history and history[-1]["after"] == text:
    last = steps[-1]
    if last.token_id == tokenizer.eot_id:
        st.info(
            _(
                "The model chose <|endoftext|>, its token for “the text ends here”; nothing was "
                "appended. Change the seed or the settings to continue anyway."
            )
        )
    chart(fig_out.sample_figure(last, display), key="generate_distribution")
    if len(steps) > 1:
        st.caption(
            _("The distribution of the last of the {n} tokens just generated.").format(n=len(steps))
        )
else:
    if trace.n_tokens_dropped == 0:
        logits, source = trace.logits[-1], _("from the stored logits")
    else:  # the Trace shows the first tokens; generation continues from the last n_ctx
        logits = get_last_logits(view, text, context_ids(text))
        source = _("the model reading the last {n} tokens").format(
            n=min(len(context_ids(text)), cfg.n_ctx)
        )
    allowed = trace.n_valid_ids  # ids past it are a padded vocabulary's padding rows
    preview = next_token_distribution(logits, settings, allowed=allowed, gaps=trace.gap_ids)
    model_probs = next_token_distribution(
        logits, SamplingSettings(), allowed=allowed, gaps=trace.gap_ids
    )
    chart(
        fig_out.top_tokens_figure(
            model_probs,
            preview,
            display,
            k=20,
            title=_("What the next draw picks from ({source})").format(source=source),
        ),
        key="generate_preview",
    )

if history:
    st.subheader(_("What was generated"))
    origin = history[0]["before"]
    if text.startswith(origin):
        st.html(
            '<div style="white-space: pre-wrap; font-size: 1.25rem; line-height: 1.6">'
            f"{html.escape(origin)}<mark>{html.escape(text[len(origin) :])}</mark></div>"
        )
        st.caption(_("Highlighted: the generated part."))
    p_col = _("p when drawn")

    def _labels(entry: dict) -> list[str]:
        """The entry's drawn tokens labelled in the context of the text they continue, so a
        byte token of a split character shows the character and its part ("注 1/3")."""
        drawn = [tok_id for tok_id, *_rest in entry["tokens"]]
        before = list(entry.get("before_ids") or [])
        return tokenizer.labels(before + drawn)[len(before) :]

    rows = [
        {
            _("step"): k + 1,
            _("action"): _action_name(entry["action"]),
            _("token"): tok_label,
            "id": tok_id,
            p_col: prob,
            _("seed"): tok_seed,
        }
        for k, entry in enumerate(history)
        for (tok_id, _tok_str, prob, tok_seed), tok_label in zip(
            entry["tokens"], _labels(entry), strict=True
        )
    ]
    st.dataframe(
        formatted(pd.DataFrame(rows), {p_col: "{:.4f}"}),
        hide_index=True,
        key="generate_history_table",
    )
    if history[-1]["after"] != text:
        st.caption(
            _(
                "The text was edited since the last step; Undo still restores the text as it "
                "was before that step."
            )
        )
st.caption(
    _(
        "The same seed and settings always give the same token; after each step the seed moves "
        "on by one, so N single steps give the same tokens as one “Generate N”. The appended "
        "text is read again from scratch, so its tokens can differ from the generated ones where "
        "two tokens merge into one (the model sees the text as a person would type it)."
    )
)

next_stage(view)
