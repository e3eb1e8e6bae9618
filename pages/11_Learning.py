"""Stage 11, Learning (issue 18): the bundled model during its training run. The loss curves and
every head's scores over the training steps, as the run recorded them (`engine.snapshots`),
with the phase change in which its induction heads formed; then, for the reader's text, one
head's attention map at each shipped snapshot on a step slider (each snapshot is a model of its
own, "bundled@STEP", run through the same caches as every page); last, a tiny model trained
live on this server (`ui.live_training`, issue 18 item 3)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.checkpoints import CheckpointError
from engine.figures import attention as fig_att
from engine.figures import learning as fig_learn
from engine.figures.common import shown
from engine.lens import attention as lens_att
from ui.cache import get_head_scores, snapshot_view, training_history
from ui.frame import frame
from ui.home import LANGUAGE_NAMES
from ui.i18n import N_, _
from ui.live_training import render_live_training
from ui.models import model_label, snapshot_id, snapshot_manifest, snapshot_step
from ui.text import quoted
from ui.widgets import chart, next_stage, shared_picker, table

# Why each shipped step is there: the manifest's sentences (assets/snapshots/manifest.json),
# marked for translation here; tests/pages/test_learning.py checks that they are the same text.
STEP_NOTES = {
    0: N_(
        "The initialisation, rebuilt from the run's seed 1337 (not stored: 0 bytes): nothing "
        "learned, no head has a role."
    ),
    1000: N_(
        "Early: the held-out loss has already fallen (English 5.32, Chinese 3.31 nats per token) "
        "from word statistics, but no head has a role (best previous-token score 0.04, "
        "induction 0.01)."
    ),
    12000: N_(
        "Just before the phase change: the previous-token head 0.3 has formed (0.50 on English, "
        "0.62 on Chinese) but there is no induction head (best 0.02)."
    ),
    12200: N_(
        "Inside the phase change (the copy task alone is trained): induction head 1.0 at 0.32, "
        "1.1 at 0.09."
    ),
    12300: N_(
        "Inside the phase change: head 1.0 at 0.65, 1.1 at 0.33, while the held-out language "
        "loss rises (English 7.11)."
    ),
    12500: N_(
        "The end of the copy stage: head 1.0 at 0.83, 1.1 at 0.68, but the language is "
        "forgotten (English 8.83); the steps after it bring the language back and keep the "
        "heads (step 20,000: English 3.99, induction 0.83 and 0.71)."
    ),
}
FINAL_NOTE = N_(
    "The shipped model, the end of the run: previous-token head 0.3, induction heads 1.0 and "
    "1.1, and the language back (held-out loss in the run's own evaluations: English 3.99, "
    "Chinese 1.87; the home page's model card measures the whole validation set after the run: "
    "3.84 and 1.90)."
)

view = frame("learning")
if view is None:
    st.stop()

manifest = snapshot_manifest()
history = training_history()
ss = st.session_state

st.title(_("11 · Learning: the model during training"))
st.markdown(
    _(
        "Every page so far showed the finished model. This one goes back in time: the bundled "
        "model was trained for {final} steps (batches of 8 × 256 tokens), and its run recorded "
        "how the loss fell and when each head found its job. Some of its earlier states ship "
        "with the app, so you can run your own text through them."
    ).format(final=f"{manifest.final_step:,}" if manifest else "20,000")
)
in_run = view.model_id == "bundled" or snapshot_step(view.model_id) is not None
if not in_run:
    st.info(
        _(
            "The model you chose, “{model}”, has no training history in this app: the curves "
            "and snapshots below are the bundled model's, run on your text. Choose “bundled” "
            "or one of its steps in the model box to see the rest of the app on them."
        ).format(model=quoted(model_label(view.model_id)))
    )
if history is None or manifest is None:
    st.warning(
        _(
            "This installation has no training history or no snapshots of the bundled model "
            "(assets/model/config.json, assets/snapshots/manifest.json): nothing to show here."
        )
    )
    next_stage(view)
    st.stop()

band = manifest.phase_change
band_label = _("phase change")
names = {lang: _(LANGUAGE_NAMES.get(lang, lang)) for lang in history.languages}
steps = list(manifest.steps)
here = snapshot_step(view.model_id)
if ss.get("learning_step") not in steps:  # first visit: the chosen model's step, else the end
    ss["learning_step"] = here if here is not None else manifest.final_step
step = int(ss["learning_step"])

# --- the loss -------------------------------------------------------------------------------
st.subheader(_("The loss while it learned"))
chart(
    fig_learn.loss_curves(
        history.eval_steps,
        history.eval_loss,
        history.val_steps,
        history.val_loss,
        names,
        _("Held-out loss per language"),
        band=band,
        band_label=band_label,
        step=step,
    ),
    key="learning_loss_chart",
)
st.caption(
    _(
        "Cross-entropy on held-out text of each language (lower is better). Solid: the "
        "snapshot evaluations after the run (the first 16 windows of 256 tokens per language); "
        "dotted: the estimates taken during training (fewer windows, noisier). The run logged "
        "no training loss (only its progress bar showed it), so there is no training curve "
        "here. In the shaded phase change the run trained on a copy task of random tokens "
        "alone: the induction heads formed and the language loss rose; it recovered afterwards. "
        "The dotted vertical line is the step chosen below."
    )
)

# --- the heads ------------------------------------------------------------------------------
st.subheader(_("What every head does, step by step"))
n_layer, n_head = history.induction.shape[1:]
left, mid, right = st.columns([1, 1, 2])
with left:
    layer = shared_picker("layer", _("Layer"), list(range(n_layer)), key="learning_layer")
with mid:
    head = shared_picker("head", _("Head"), list(range(n_head)), key="learning_head")
with right:
    lang = st.radio(
        _("Previous-token score measured on"),
        list(history.languages),
        format_func=lambda g: names[g],
        horizontal=True,
        key="learning_lang",
    )
chart(
    fig_learn.head_score_curves(
        history.eval_steps,
        [
            (
                _("previous-token score ({language} text)").format(language=names[lang]),
                history.previous[lang],
            ),
            (_("induction score (random tokens repeated)"), history.induction),
        ],
        (layer, head),
        _("Every head over training; head {layer}.{head} thick").format(layer=layer, head=head),
        band=band,
        band_label=band_label,
        step=step,
    ),
    key="learning_heads_chart",
)
st.caption(
    _(
        "Previous-token score: the mean attention a token pays to the one just before it. "
        "Induction score: on random tokens repeated twice, the mean attention from the second "
        "copy to the token after the same token in the first copy (what a copying head does). "
        "Both as the run measured them at each evaluation (2 windows, 2 random sequences). The "
        "run did not record the first-token sink; the table below measures it, with the other "
        "scores, on your text at each shipped step."
    )
)

# --- your text at each snapshot ---------------------------------------------------------------
st.subheader(_("Your text through the model's history"))


def _step_name(s: int) -> str:
    return f"{s:,}"


step = st.select_slider(
    _("Training step (a shipped snapshot)"),
    options=steps,
    key="learning_step",
    format_func=_step_name,
    help=_(
        "Each step is the bundled model as it was then; the map is computed the first time a "
        "step is shown for this text and kept for the next visit."
    ),
)
model_id = snapshot_id(step)
try:
    snap = snapshot_view(view, model_id)
except (CheckpointError, OSError) as err:
    st.error(
        _("Could not load the model “{model}”: {error}").format(
            model=quoted(model_id), error=quoted(str(err))
        )
    )
    next_stage(view)
    st.stop()
pattern = snap.trace.get("attn.hook_pattern", layer)
note = STEP_NOTES.get(step, FINAL_NOTE if step == manifest.final_step else "")
st.markdown(_("**Step {step}.** {note}").format(step=f"{step:,}", note=_(note) if note else ""))
chart(
    fig_att.pattern_heatmap(
        pattern[head],
        lens_att.raw_scores(snap.trace, layer, head),
        snap.trace.token_strs,
        _("Step {step}: layer {layer}, head {head}").format(
            step=f"{step:,}", layer=layer, head=head
        ),
    ),
    key="learning_map_chart",
)
st.caption(
    _(
        "Try a text that repeats itself (a lecture preset, or any sentence typed twice) and "
        "head 1.0: at step 0 its map is nearly uniform over the tokens before each query; "
        "by the end, tokens of the second copy look at the token after their twin in the "
        "first copy (a diagonal stripe one place right of the copy's start)."
    )
    + " "
    + _("As a model: “{label}” in the model box (every page can show it).").format(
        label=model_label(model_id)
    )
)

rows = []
for s in steps:
    try:
        scores = get_head_scores(snapshot_view(view, snapshot_id(s)))
    except (CheckpointError, OSError):
        continue
    role = scores.label(layer, head)
    rows.append(
        {
            _("step"): f"{s:,}",
            _("previous-token"): shown(scores.previous[layer, head]),
            _("induction"): shown(scores.induction[layer, head]),
            _("first-token sink"): shown(scores.first[layer, head]),
            _("role on your text"): _(role) if role else "–",
        }
    )
st.markdown(
    _("**Head {layer}.{head} on your text at every shipped step**").format(layer=layer, head=head)
)
table(pd.DataFrame(rows), key="learning_scores_table")
st.caption(
    _(
        "Measured on your text (as on the attention page): previous-token and first-token sink "
        "are mean weights over queries 1 to the end; induction needs a repeated token (“–” when "
        "your text repeats none)."
    )
)

st.divider()
render_live_training()  # issue 18 item 3: a tiny model trained here, live (ui/live_training.py)

next_stage(view)
