"""Stage 10, cause and effect: knock heads out, patch activations between two prompts, and
attribute a prediction to every head and MLP (engine.interventions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine.figures import interventions as fig_iv
from engine.figures.common import plotly_text, prose_number, signed_range
from engine.interventions import default_answers, log_probs, sublayer_lens
from engine.lens.logit_lens import final_probs
from ui.cache import get_attribution, get_knock_out, get_last_logits, get_patching
from ui.frame import frame
from ui.i18n import _
from ui.intervene import (
    KNOCK_OUT_PRESETS,
    MAX_PATCH_TOKENS,
    MAX_PROMPT_CHARS,
    PATCHING_PRESETS,
    ablation_value,
    parse_ablation,
)
from ui.lecture import in_pickers
from ui.models import encode_text
from ui.state import set_text
from ui.text import markdown_literal
from ui.widgets import chart, formatted, next_stage

view = frame("intervene")
if view is None:
    st.stop()

ss = st.session_state
trace, cfg, pos = view.trace, view.trace.config, view.pos
L, H, T = cfg.n_layer, cfg.n_head, trace.n_tokens
display = view.loaded.tokenizer.display
n_valid, gaps = trace.n_valid_ids, trace.gap_ids


def probs_of(logits: np.ndarray) -> np.ndarray:
    """Next-token probabilities over the tokens of the model's tokenizer."""
    return np.exp(log_probs(logits, n_valid, gaps))


def token_md(i: int) -> str:
    return markdown_literal(display(int(i)))


st.title(_("10 · Cause and effect"))
st.markdown(
    _(
        "The other pages show what the model computes; this one changes it and watches what "
        "follows. **Knock out** heads and see which predictions break, **patch** activations "
        "from one prompt into another to find where an answer is carried, and **attribute** a "
        "prediction to every head and MLP. Each change runs the model again on your text, for "
        "your session only: the shared model itself is never altered."
    )
)
TAB_LABELS = [_("Knock out heads"), _("Two prompts: activation patching"), _("Attribution")]
# Lazy tabs: only the open tab runs (each runs the model again), so a click elsewhere on the
# page does not recompute the other two. A link that brings two prompts opens on patching.
knock_tab, patch_tab, attr_tab = st.tabs(
    TAB_LABELS,
    key="intervene_tab",
    on_change="rerun",
    default=TAB_LABELS[1] if {"clean", "corrupt"} & set(st.query_params) else TAB_LABELS[0],
)

# --- knock out -----------------------------------------------------------------------------


def _apply_knock_out_preset() -> None:
    name = ss.get("_w_ko_preset")
    for preset in KNOCK_OUT_PRESETS:
        if _(preset.name) == name:
            set_text(preset.text)
            ss["ablate"], ss["ablate_mode"], ss["pos"] = preset.ablate, "", preset.pos
    ss["_w_ko_preset"] = None


def _on_grid(widget_key: str, grid: pd.DataFrame) -> None:
    edits = ss.get(widget_key, {}).get("edited_rows", {})
    new = grid.copy()
    for row, changes in edits.items():
        for column, value in changes.items():
            new.loc[new.index[int(row)], column] = bool(value)
    parts = [f"{layer}.{h}" for layer in range(len(new)) for h in range(H) if new.iloc[layer, h]]
    parts += [f"mlp{layer}" for layer in range(len(new)) if new.iloc[layer, H]]
    ss["ablate"] = ",".join(parts)


def _on_mode() -> None:
    ss["ablate_mode"] = "mean" if ss["_w_ablate_mode"] == "mean" else ""


def _on_pick() -> None:
    ss["ablate"] = ",".join(ss["_w_ablate_pick"])


def _clear_ablation() -> None:
    ss["ablate"] = ""


if knock_tab.open:
    with knock_tab:
        st.markdown(
            _(
                "**Ablation** switches a part of the model off for one run. A head is knocked out "
                "at its output z (the attention-weighted values, before the output projection "
                "W_O): **zero-ablation** replaces it by zeros, **mean-ablation** by its average "
                "over the positions of your text. Olsson et al. (2022) knocked induction heads out "
                "this way to show that they cause in-context copying. An MLP is knocked out at its "
                "output."
            )
        )
        st.selectbox(
            _("Presets (measured on the bundled model)"),
            [_(p.name) for p in KNOCK_OUT_PRESETS],
            index=None,
            placeholder=_("Choose a prepared knock-out…"),
            key="_w_ko_preset",
            on_change=_apply_knock_out_preset,
            help="\n".join(f"- **{_(p.name)}**: {_(p.why)}" for p in KNOCK_OUT_PRESETS),
        )
        ablation, notices = parse_ablation(
            ss.get("ablate") or "", ss.get("ablate_mode") or "", L, H
        )
        for notice in notices:
            st.warning(notice)
        if notices:  # the address keeps what was used
            ss["ablate"] = ablation_value(ablation)
        grid = pd.DataFrame(
            {
                **{
                    _("head {head}").format(head=h): [
                        (layer, h) in ablation.heads for layer in range(L)
                    ]
                    for h in range(H)
                },
                _("MLP"): [layer in ablation.mlps for layer in range(L)],
            },
            index=[_("layer {layer}").format(layer=layer) for layer in range(L)],
        )
        mode_col, clear_col = st.columns([4, 1], vertical_alignment="bottom")
        ss["_w_ablate_mode"] = "mean" if ablation.mode == "mean" else "zero"
        mode_col.radio(
            _("Replace by"),
            ["zero", "mean"],
            key="_w_ablate_mode",
            format_func=lambda m: _("zeros") if m == "zero" else _("the mean over positions"),
            on_change=_on_mode,
            horizontal=True,
        )
        clear_col.button(_("Clear"), key="_w_ablate_clear", on_click=_clear_ablation)
        picks = [f"{layer}.{h}" for layer in range(L) for h in range(H)]
        picks += [f"mlp{layer}" for layer in range(L)]
        ss["_w_ablate_pick"] = [p for p in ablation_value(ablation).split(",") if p]
        st.multiselect(
            _("Heads (layer.head) and MLPs to knock out"),
            picks,
            key="_w_ablate_pick",
            format_func=lambda p: (
                _("MLP {layer}").format(layer=p[3:]) if p.startswith("mlp") else p
            ),
            on_change=_on_pick,
            placeholder=_("Type or choose, e.g. 1.2"),
        )
        st.caption(
            _(
                "…or tick them in the grid (rows are layers, columns heads; click a box, or select "
                "it and press Space)."
            )
        )
        grid_key = f"_w_ablate_grid_{ablation_value(ablation)}"
        st.data_editor(
            grid, key=grid_key, on_change=_on_grid, args=(grid_key, grid), width="stretch"
        )
        for preset in KNOCK_OUT_PRESETS:
            if preset.text == trace.prompt and preset.ablate == ss.get("ablate"):
                st.info(_(preset.why))

        if ablation.empty:
            st.info(_("Nothing is knocked out yet: tick a head in the grid or choose a preset."))
        else:
            ko = get_knock_out(view, ablation)
            p_before, p_after = probs_of(ko.logits_before[pos]), probs_of(ko.logits_after[pos])
            ids = fig_iv.top_ids_before_after(p_before, p_after, 10)
            what = ", ".join(
                _("MLP {layer}").format(layer=part[3:]) if part.startswith("mlp") else part
                for part in ablation_value(ablation).split(",")
            )
            chart(
                fig_iv.before_after_figure(
                    ids,
                    p_before,
                    p_after,
                    display,
                    _("Next token after “{token}” (position {pos}), before and after").format(
                        token=plotly_text(display(int(trace.token_ids[pos]))), pos=pos
                    ),
                    names=(_("before"), _("after knocking out {what}").format(what=what)),
                ),
                key="intervene_ko_probs",
            )
            if pos + 1 < T:
                nxt = int(trace.token_ids[pos + 1])
                st.caption(
                    _(
                        "The token that really comes next, “{token}”: p = {before} before, "
                        "{after} after. Choose the position {where}."
                    ).format(
                        where=in_pickers(),
                        token=token_md(nxt),
                        before=prose_number(p_before[nxt], "{:.4f}"),
                        after=prose_number(p_after[nxt], "{:.4f}"),
                    )
                )
            if T > 1:
                chart(
                    fig_iv.loss_figure(
                        ko.loss_before,
                        ko.loss_after,
                        trace.token_strs,
                        _("Loss on each next token, before and after"),
                        _("loss (nats)"),
                        names=(_("before"), _("after")),
                    ),
                    key="intervene_ko_loss",
                )
                st.caption(
                    _(
                        "Position t's loss is −log p of the token at t + 1 (lower: better "
                        "predicted). Mean over the text: {before} nats before, {after} nats after."
                    ).format(
                        before=prose_number(ko.loss_before.mean(), "{:.3f}"),
                        after=prose_number(ko.loss_after.mean(), "{:.3f}"),
                    )
                )
            else:
                st.caption(_("A one-token text has no next token to score: add more text."))

# --- activation patching -------------------------------------------------------------------


def _apply_patching_preset() -> None:
    name = ss.get("_w_patch_preset")
    for preset in PATCHING_PRESETS:
        if _(preset.name) == name:
            ss["clean"], ss["corrupt"] = preset.clean, preset.corrupt
            ss.pop("_w_answer", None)
            ss.pop("_w_wrong", None)
    ss["_w_patch_preset"] = None


def _on_prompt(key: str) -> None:
    ss[key] = ss[f"_w_{key}"]


if patch_tab.open:
    with patch_tab:
        st.markdown(
            _(
                "**Activation patching** (Meng et al. 2022; Wang et al. 2022): run a *clean* and a "
                "*corrupted* prompt, then run the corrupted one again with one activation copied "
                "from the clean run, and measure the **logit difference** logit(answer) − "
                "logit(wrong) at the last position. The **restored fraction** is (patched − "
                "corrupted) / (clean − corrupted): 1 means that one activation brings back the "
                "clean answer entirely, 0 that it changes nothing. Position t of the clean run is "
                "copied into position t of the corrupted one, so both prompts must have the same "
                "number of tokens (at most {n})."
            ).format(n=MAX_PATCH_TOKENS)
        )
        st.selectbox(
            _("Presets"),
            [_(p.name) for p in PATCHING_PRESETS],
            index=None,
            placeholder=_("Choose a prepared pair of prompts…"),
            key="_w_patch_preset",
            on_change=_apply_patching_preset,
            help="\n".join(f"- **{_(p.name)}**: {_(p.why)}" for p in PATCHING_PRESETS),
        )
        default = PATCHING_PRESETS[0]
        c1, c2 = st.columns(2)
        ss["_w_clean"] = (ss.get("clean") or default.clean)[:MAX_PROMPT_CHARS]
        c1.text_area(
            _("Clean prompt"),
            key="_w_clean",
            on_change=_on_prompt,
            args=("clean",),
            height=90,
            max_chars=MAX_PROMPT_CHARS,
        )
        ss["_w_corrupt"] = (ss.get("corrupt") or default.corrupt)[:MAX_PROMPT_CHARS]
        c2.text_area(
            _("Corrupted prompt"),
            key="_w_corrupt",
            on_change=_on_prompt,
            args=("corrupt",),
            height=90,
            max_chars=MAX_PROMPT_CHARS,
        )
        clean_text, corrupt_text = ss["_w_clean"], ss["_w_corrupt"]
        clean_ids = encode_text(view.loaded, clean_text)
        corrupt_ids = encode_text(view.loaded, corrupt_text)
        limit = min(MAX_PATCH_TOKENS, cfg.n_ctx)
        if not clean_ids or not corrupt_ids:
            st.info(_("Type both prompts to compare them."))
        elif len(clean_ids) != len(corrupt_ids):  # a warning: the default pair may differ too
            st.warning(
                _(
                    "The clean prompt has {a} tokens and the corrupted one {b}. Patching copies "
                    "position t into position t, so both need the same number of tokens: change a "
                    "word for one of the same token count (the tables below show the tokens)."
                ).format(a=len(clean_ids), b=len(corrupt_ids))
            )
            t1, t2 = st.columns(2)
            t1.dataframe(pd.DataFrame({_("clean tokens"): [display(i) for i in clean_ids]}))
            t2.dataframe(pd.DataFrame({_("corrupted tokens"): [display(i) for i in corrupt_ids]}))
        elif len(clean_ids) > limit:
            st.warning(
                _(
                    "The prompts have {n} tokens; patching runs the model once per layer and "
                    "position, so this page takes at most {limit}. Shorten both prompts."
                ).format(n=len(clean_ids), limit=limit)
            )
        else:
            clean_last = get_last_logits(view, clean_text, clean_ids)
            corrupt_last = get_last_logits(view, corrupt_text, corrupt_ids)
            auto_answer, auto_wrong = default_answers(clean_last, corrupt_last, n_valid, gaps)
            options = [auto_answer, auto_wrong]
            for logits in (clean_last, corrupt_last):
                options += [int(i) for i in np.argsort(-log_probs(logits, n_valid, gaps))[:8]]
            preset_tokens = next(
                (
                    (p.answer, p.wrong)
                    for p in PATCHING_PRESETS
                    if (p.clean, p.corrupt) == (clean_text, corrupt_text)
                ),
                None,
            )
            chosen = {}
            if preset_tokens:
                for name, word in zip(("answer", "wrong"), preset_tokens, strict=True):
                    word_ids = encode_text(view.loaded, word)
                    if word_ids and word_ids[0] < n_valid:
                        chosen[name] = int(word_ids[0])
                        options.insert(0, int(word_ids[0]))
            options = list(dict.fromkeys(options))
            for name, auto in (("answer", auto_answer), ("wrong", auto_wrong)):
                if ss.get(f"_w_{name}") not in options:
                    ss[f"_w_{name}"] = chosen.get(name, auto)
            a1, a2 = st.columns(2)
            answer = a1.selectbox(
                _("Answer (what the clean prompt should make likely)"),
                options,
                key="_w_answer",
                format_func=lambda i: f"{display(i)}  (id {i})",
            )
            wrong = a2.selectbox(
                _("Wrong answer (what the corrupted prompt makes likely)"),
                options,
                key="_w_wrong",
                format_func=lambda i: f"{display(i)}  (id {i})",
            )
            if answer == wrong:
                st.warning(_("Choose two different tokens: their logit difference is the measure."))
            else:
                result = get_patching(view, clean_ids, corrupt_ids, int(answer), int(wrong))
                m1, m2 = st.columns(2)
                m1.metric(_("Logit difference, clean"), prose_number(result.clean_diff, "{:.3f}"))
                m2.metric(
                    _("Logit difference, corrupted"),
                    prose_number(result.corrupt_diff, "{:.3f}"),
                )
                labels = [
                    display(c) if c == k else f"{display(c)} / {display(k)}"
                    for c, k in zip(clean_ids, corrupt_ids, strict=True)
                ]
                if result.normalisable:
                    resid = result.restored(result.resid_diff)
                    heads = result.restored(result.head_diff)
                    mlps = result.restored(result.mlp_diff)
                    bar_title, zmax = _("restored"), 1.0
                else:
                    st.warning(
                        _(
                            "Both prompts give the same logit difference, so there is nothing to "
                            "restore: the maps show the patched logit difference itself."
                        )
                    )
                    resid, heads, mlps = result.resid_diff, result.head_diff, result.mlp_diff
                    bar_title, zmax = _("logit diff."), None
                chart(
                    fig_iv.patching_figure(
                        resid,
                        labels,
                        _(
                            "Residual stream: the fraction restored by patching one layer and "
                            "position"
                        ),
                        bar_title,
                        zmax=zmax,
                    ),
                    key="intervene_patch_resid",
                )
                h1, h2 = st.columns([3, 2])
                with h1:
                    chart(
                        fig_iv.head_grid_figure(
                            heads,
                            _("Heads: patching one head's output at every position"),
                            bar_title,
                            zmax=zmax,
                        ),
                        key="intervene_patch_heads",
                        where=h1,
                    )
                with h2:
                    chart(
                        fig_iv.component_bars(
                            [_("MLP {layer}").format(layer=layer) for layer in range(L)],
                            mlps,
                            _("MLPs: patching one MLP's output"),
                            bar_title,
                            xmax=zmax if zmax is not None else signed_range(heads),
                        ),
                        key="intervene_patch_mlps",
                        where=h2,
                    )
                st.caption(
                    _(
                        "Labels “clean / corrupted” mark the positions where the prompts differ. "
                        "Positions after the measured one cannot change it (0 restored)."
                    )
                )

# --- attribution ---------------------------------------------------------------------------


def component_label(name: str) -> str:
    """A component of the attribution as the page names it."""
    if name == "embed":
        return _("token embedding")
    if name == "pos_embed":
        return _("position embedding")
    if name == "ln_final_bias":
        return _("ln_f bias")
    layer = name[1:].split("_")[0]
    if name.endswith("_attn_bias"):
        return _("attention bias {layer}").format(layer=layer)
    if name.endswith("_mlp_out"):
        return _("MLP {layer}").format(layer=layer)
    return name


if attr_tab.open:
    with attr_tab:
        st.markdown(
            _(
                "**Direct logit attribution** (Elhage et al. 2021): the last residual vector is a "
                "sum of what every part wrote into it (the embeddings, each head, each MLP, the "
                "biases). Hold the final layer norm's scale at its value in this run and ln_f "
                "becomes linear, so the logit of a token splits exactly into one share per part. "
                "A share counts only the part's *direct* path to the output: a head that works by "
                "steering a later head shows up small here although knocking it out matters."
            )
        )
        probs = final_probs(trace, pos)
        options = [int(i) for i in np.argsort(-probs, kind="stable")[:10]]
        if pos + 1 < T and int(trace.token_ids[pos + 1]) not in options:
            options.append(int(trace.token_ids[pos + 1]))
        if ss.get("_w_attr_token") not in options:
            ss["_w_attr_token"] = options[0]
        token = st.selectbox(
            _("Token whose logit is split (next token after position {pos})").format(pos=pos),
            options,
            key="_w_attr_token",
            format_func=lambda i: f"{display(i)}  (id {i}, p = {probs[i]:.3f})",
        )
        attr = get_attribution(view, pos, int(token))
        hover = []
        for c in range(len(attr.names)):
            up = ", ".join(display(int(i)) for i in attr.promoted[c])
            down = ", ".join(display(int(i)) for i in attr.suppressed[c])
            hover.append(
                "<br>"
                + _("pushes up: {up}").format(up=plotly_text(up))
                + "<br>"
                + _("pushes down: {down}").format(down=plotly_text(down))
            )
        head_hover = np.array(
            [[hover[attr.index(f"L{layer}H{h}")] for h in range(H)] for layer in range(L)],
            dtype=object,
        )
        scale = signed_range(attr.contributions)  # one colour scale for heads and the rest
        chart(
            fig_iv.head_grid_figure(
                attr.head_grid,
                _("Each head's share of the logit of “{token}”").format(
                    token=plotly_text(display(int(token)))
                ),
                _("logit"),
                hover=head_hover,
                zmax=scale,
            ),
            key="intervene_attr_heads",
        )
        others = [
            i for i, n in enumerate(attr.names) if not (n[0] == "L" and "H" in n and "_" not in n)
        ]
        chart(
            fig_iv.component_bars(
                [component_label(attr.names[i]) for i in others],
                attr.contributions[others],
                _("Embeddings, MLPs and biases"),
                _("logit"),
                hover=[hover[i] for i in others],
                xmax=scale,
            ),
            key="intervene_attr_other",
        )
        st.caption(
            _(
                "The shares add up to {total}; the model's logit of this token is {logit}. Hover "
                "over a cell or bar for the tokens that part pushes up and down the most."
            ).format(
                total=prose_number(attr.contributions.sum(), "{:.4f}"),
                logit=prose_number(attr.logit, "{:.4f}"),
            )
        )
        if st.toggle(_("Show the logit lens after every sub-layer"), key="_w_sublayer_lens"):
            lens = sublayer_lens(trace, view.loaded.model, k=1)
            its_p = _("its p")
            st.dataframe(  # p a number (right-aligned), as in the Output page's lens table
                formatted(
                    pd.DataFrame(
                        {
                            _("residual after"): lens.layer_labels,
                            _("top guess"): [display(int(i)) for i in lens.top_ids[:, pos, 0]],
                            its_p: lens.top_probs[:, pos, 0].astype(np.float64),
                        }
                    ),
                    {its_p: "{:.4f}"},
                ),
                hide_index=True,
                key="intervene_sublayer_lens",
            )

next_stage(view)
