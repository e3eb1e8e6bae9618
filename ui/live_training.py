"""Train one live (issue 18, item 3): a section that trains a tiny GPT in a background thread
while the page redraws its progress, its loss curves and every head's attention each second.

Call `render_live_training()` anywhere in a page's body (after the frame). The run
(`engine.training.live.LiveRun`) lives in this browser session's `st.session_state`; it ends at
its step or time budget, on the Stop button, or when the session that started it is gone
(Streamlit has no session-end callback: the run asks the runtime whether its session is still
connected about once a second, and stops after `LiveConfig.owner_grace_s` seconds without
it). The operator caps runs per process with `INSIDE_GPT_LIVE_TRAINING` (`ui.settings`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from engine.figures.common import sent_figure
from engine.figures.live import live_heads_figure, live_loss_figure
from engine.training.live import (
    FAILED,
    FINISHED,
    LIVE_CONFIG,
    OWNER_GONE,
    REGISTRY,
    RUNNING,
    STOPPED,
    LiveConfig,
    LiveProgress,
    LiveRun,
    LiveTrainingRefusedError,
)
from ui import settings
from ui.exports import png_config, svg_button
from ui.i18n import _, language
from ui.lecture import lecture_mode
from ui.widgets import chart

log = logging.getLogger(__name__)

# Seconds between redraws of the progress, curves and maps while training. Each redraw holds
# Python's GIL while it builds the loss figure (about 0.1 s), time the training thread loses;
# the attention maps (about 0.5 s to build and style) are rebuilt only when a new snapshot
# arrives (every `LiveConfig.eval_every` steps), so training keeps most of its speed.
REFRESH_S = 2.0


def session_alive_check() -> Callable[[], bool] | None:
    """A thread-safe "is the browser session running this script still connected?" for the
    run's thread (`Runtime.is_active_session`), or None outside a Streamlit server (AppTest,
    bare mode): then only the Stop button and the budgets end a run."""
    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    instance, session_id = runtime.get_instance(), ctx.session_id
    return lambda: instance.is_active_session(session_id)


def _what_to_watch(config: LiveConfig) -> str:
    m, t = config.model, config.train
    return _(
        "**What to watch for.** A GPT of {layers} layers with {heads} heads each (width "
        "{width}, context {context} tokens) starts from random weights and trains on "
        "Shakespeare mixed with a copy task: in {share}% of the rows, {half} random tokens "
        "are followed by the same tokens again, and only the repeat is scored (a uniform guess "
        "costs {uniform} nats a token). "
        "(1) The loss first falls fast, then sits on a **plateau**: the model has learned "
        "which tokens are common, but it cannot copy yet, so the blue curve (the held-out "
        "copy task) stays high. "
        "(2) Then the blue curve **drops** within a few dozen steps: the model has started to "
        "copy. Watch the maps at that moment: on the probe ({half} random tokens, then the "
        "same tokens again) one or two heads draw a bright stripe {offset} tokens left of the "
        "diagonal: each token of the second half looks at the token that followed its earlier "
        "occurrence, the pattern of an **induction head** (Olsson et al. 2022), and the map "
        "labels the head so. Here every repeat starts exactly {half} tokens back, so a head "
        "can find that place by position alone; a head of layer 0 can only do it that way. A "
        "true induction head finds it by content, reading a previous-token head of an earlier "
        "layer; the bundled model learned that in a long training, not in two minutes. "
        "(3) The orange curve (held-out text) falls slowly all along: two minutes teach very "
        "little English."
    ).format(
        layers=m.n_layer,
        heads=m.n_head,
        width=m.d_model,
        context=m.n_ctx,
        share=round(100 * t.synthetic_share),
        half=config.probe_half,
        offset=config.probe_half - 1,
        uniform=f"{math.log(m.vocab_size):.1f}",
    )


def _status_text(p: LiveProgress) -> str:
    values = {
        "step": p.step,
        "max_steps": p.max_steps,
        "elapsed": round(p.elapsed_s),
        "max_s": round(p.max_seconds),
    }
    if p.status == RUNNING:
        return _("Training: step {step} of {max_steps}, {elapsed} s of at most {max_s} s").format(
            **values
        )
    if p.status == FINISHED:
        return _("Finished: {step} steps in {elapsed} s.").format(**values)
    if p.status == STOPPED:
        return _("Stopped after {step} steps ({elapsed} s).").format(**values)
    if p.status == OWNER_GONE:
        return _("Stopped after {step} steps: this browser session was disconnected.").format(
            **values
        )
    return _("Training failed after {step} steps.").format(**values)


def _refusal_text(err: LiveTrainingRefusedError) -> str:
    if err.reason == "disabled":
        return _("Live training is turned off on this server.")
    return _(
        "The server already trains {limit} model(s) live, its limit; start again when a run "
        "has ended (each takes at most a couple of minutes)."
    ).format(limit=err.limit)


def _show(run: LiveRun, key: str) -> None:
    """The run's progress bar, Stop button, loss curves and attention maps."""
    p = run.progress()
    if p.status == RUNNING and st.button(_("Stop"), key=f"{key}_stop"):
        run.stop()
    st.progress(p.fraction, text=_status_text(p))
    if p.status == FAILED:
        st.error(_("Live training failed; the server's log has the details."))
    chart(
        live_loss_figure(
            p.steps,
            p.loss,
            p.eval_steps,
            p.copy_loss,
            p.text_loss,
            p.max_steps,
            _("Loss while it trains"),
        ),
        key=f"{key}_loss",
    )
    if p.heads is None:
        st.caption(_("The attention maps appear after the first evaluation."))
        return
    # built and styled once per snapshot (and language, and lecture mode), then redrawn as is
    # (`sent_figure`: Streamlit takes its finished dict without copying it)
    stamp = (id(run), p.heads.step, language(), lecture_mode())
    cached = st.session_state.get(f"{key}_heads_figure")
    if cached is None or cached[0] != stamp:
        fig = live_heads_figure(
            p.heads.patterns,
            p.heads.labels,
            p.heads.induction,
            p.probe_tokens,
            _("Every head on the probe at step {step}").format(step=p.heads.step),
        )
        cached = (stamp, sent_figure(fig, lecture=stamp[3]))
        st.session_state[f"{key}_heads_figure"] = cached
    fig = cached[1]
    st.plotly_chart(fig, theme=None, key=f"{key}_heads", config=png_config(fig, f"{key}_heads"))
    st.caption(
        _("Above each map: the head, its role on the probe and, in brackets, its induction score.")
    )
    svg_button(fig, f"{key}_heads")


def render_live_training(key: str = "live_training", config: LiveConfig = LIVE_CONFIG) -> None:
    """The live-training section: what to watch for, a Start button, and while a run of this
    session exists, its progress, Stop button, live loss curve and live attention maps
    (redrawn every REFRESH_S seconds by a fragment while it trains). `key` prefixes the
    widget keys and the session_state entry (`{key}_run`) holding the run; `config` is the
    run's settings (tests pass a short one)."""
    st.subheader(_("Train one live"))
    st.markdown(_what_to_watch(config))
    limit = settings.live_training_limit()
    if limit <= 0:
        st.info(_("Live training is turned off on this server."))
        return
    state_key = f"{key}_run"
    run: LiveRun | None = st.session_state.get(state_key)
    running = run is not None and run.progress().status == RUNNING
    label = _("Train a tiny model")
    clicked = st.button(label, key=f"{key}_start", disabled=running, type="primary")
    if clicked and not running:  # (a click sent before the button was disabled is ignored)
        try:
            run = REGISTRY.start(limit, config, owner_alive=session_alive_check())
        except LiveTrainingRefusedError as err:
            st.warning(_refusal_text(err))
        except Exception:  # a message for the visitor, the traceback for the log
            log.exception("live training could not start")
            st.error(_("Live training could not start; the server's log has the details."))
        else:
            st.session_state[state_key] = run
            st.rerun()  # draw the Start button disabled and start the timed redraws
    if run is None:
        return

    @st.fragment(run_every=REFRESH_S if running else None)
    def live_view() -> None:
        _show(run, key)
        if running and run.progress().status != RUNNING:
            st.rerun()  # the whole section: Start enabled again, no more timed redraws

    live_view()
