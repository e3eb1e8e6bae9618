"""Page 10 (cause and effect) in AppTest on the tiny model: every figure's data equals the engine's
numbers (knock-out, activation patching, attribution), links carry the ablation and both prompts,
prompts of different lengths are refused with the text kept; and the knock-out preset changes a
prediction on the shipped bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, load
from engine.interventions import (
    Ablation,
    activation_patching,
    default_answers,
    direct_logit_attribution,
    knock_out,
    log_probs,
    run_logits,
    sublayer_lens,
)
from tests import support
from tests.support import PLAIN, charts, shown_cells, table_with, values
from ui.intervene import KNOCK_OUT_PRESETS, PATCHING_PRESETS

PAGE = "pages/10_Intervene.py"
CLEAN, CORRUPT = "The cat drinks water", "The cat drinks fire"


def open_tab(label: str, **query: str):
    """The page opened on the tab `label` (its tabs are lazy: only the open one runs)."""
    at = support.new_app({"text": PLAIN.text, **query})
    at.switch_page(PAGE)
    at.session_state["intervene_tab"] = label
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _probs(logits: np.ndarray, trace) -> np.ndarray:
    return np.exp(log_probs(logits, trace.n_valid_ids, trace.gap_ids))


def test_knock_out_figures_equal_the_engine(tiny_loaded: LoadedModel) -> None:
    at = PLAIN.open(PAGE, ablate="1.0,mlp0", ablate_mode="mean", pos="5")
    trace = PLAIN.trace(tiny_loaded)
    ko = knock_out(tiny_loaded.model, trace, Ablation(frozenset({(1, 0)}), {0}, "mean"))
    figs = charts(at)
    bars = figs["intervene_ko_probs"]["data"]
    p_before, p_after = _probs(ko.logits_before[5], trace), _probs(ko.logits_after[5], trace)
    ids = [int(label.rsplit("(id ", 1)[1].rstrip(")")) for label in bars[0]["y"]]
    assert ids[:10] == [int(i) for i in np.argsort(-p_before, kind="stable")[:10]]
    np.testing.assert_allclose(values(bars[0]["x"]), p_before[ids], atol=1e-7)
    np.testing.assert_allclose(values(bars[1]["x"]), p_after[ids], atol=1e-7)
    assert not np.allclose(p_before[ids], p_after[ids], rtol=1e-2, atol=0)  # the ablation shows
    lines = figs["intervene_ko_loss"]["data"]
    np.testing.assert_allclose(values(lines[0]["y"]), ko.loss_before, atol=1e-9)
    np.testing.assert_allclose(values(lines[1]["y"]), ko.loss_after, atol=1e-9)
    assert at.query_params["ablate"] in ("1.0,mlp0", ["1.0,mlp0"])


def test_picking_heads_ablates_them_and_writes_the_link(tiny_loaded: LoadedModel) -> None:
    at = PLAIN.open(PAGE, pos="3")
    at.multiselect(key="_w_ablate_pick").set_value(["0.1", "mlp1"]).run()
    assert at.query_params["ablate"] in ("0.1,mlp1", ["0.1,mlp1"])
    trace = PLAIN.trace(tiny_loaded)
    ko = knock_out(tiny_loaded.model, trace, Ablation(frozenset({(0, 1)}), {1}))
    lines = charts(at)["intervene_ko_loss"]["data"]
    np.testing.assert_allclose(values(lines[1]["y"]), ko.loss_after, atol=1e-9)
    at.button(key="_w_ablate_clear").click().run()
    assert "ablate" not in at.query_params
    assert "intervene_ko_probs" not in charts(at)


def test_bad_heads_in_a_link_are_named_and_dropped() -> None:
    at = PLAIN.open(PAGE, ablate="1.0,9.9,x")
    warnings = [w.value for w in at.warning]
    assert any("9.9" in w for w in warnings) and any("“x”" in w for w in warnings)
    at.run()
    assert at.query_params["ablate"] in ("1.0", ["1.0"])


def test_nothing_ablated_says_how_to_start() -> None:
    at = PLAIN.open(PAGE)
    assert "intervene_ko_probs" not in charts(at)
    assert any("Nothing is knocked out" in i.value for i in at.info)


def test_patching_heatmaps_equal_the_engine(tiny_loaded: LoadedModel) -> None:
    at = PLAIN.open(PAGE, clean=CLEAN, corrupt=CORRUPT)
    tok, model = tiny_loaded.tokenizer, tiny_loaded.model
    clean, corrupt = tok.encode(CLEAN), tok.encode(CORRUPT)
    answer, wrong = default_answers(
        run_logits(model, clean)[-1], run_logits(model, corrupt)[-1], tok.vocab_size
    )
    assert at.selectbox(key="_w_answer").value == answer
    assert at.selectbox(key="_w_wrong").value == wrong
    result = activation_patching(model, clean, corrupt, answer=answer, wrong=wrong)
    figs = charts(at)
    resid = figs["intervene_patch_resid"]["data"][0]
    np.testing.assert_allclose(values(resid["z"]), result.restored(result.resid_diff), atol=1e-5)
    assert resid["x"][-1].endswith("water / ␣fire")
    heads = figs["intervene_patch_heads"]["data"][0]
    np.testing.assert_allclose(values(heads["z"]), result.restored(result.head_diff), atol=1e-5)
    mlps = figs["intervene_patch_mlps"]["data"][0]
    np.testing.assert_allclose(values(mlps["x"]), result.restored(result.mlp_diff), atol=1e-5)
    metrics = [m.value for m in at.metric]
    # written as the charts write numbers: a negative one with the minus sign "−"
    assert metrics == [
        f"{result.clean_diff:.3f}".replace("-", "−"),
        f"{result.corrupt_diff:.3f}".replace("-", "−"),
    ]
    for key, text in (("clean", CLEAN), ("corrupt", CORRUPT)):
        assert at.query_params[key] in (text, [text])


def test_a_long_prompt_from_a_link_is_cut_to_the_box_and_refused_politely() -> None:
    at = PLAIN.open(PAGE, clean="water " * 400, corrupt="water " * 300)
    assert len(at.text_area(key="_w_clean").value) == 1000
    assert any("Shorten both prompts" in w.value for w in at.warning)
    assert "intervene_patch_resid" not in charts(at)


def test_the_default_pair_compares_the_presets_tokens(tiny_loaded: LoadedModel) -> None:
    at = open_tab("Two prompts: activation patching")
    pair, tok = PATCHING_PRESETS[0], tiny_loaded.tokenizer
    assert at.text_area(key="_w_clean").value == pair.clean
    assert at.selectbox(key="_w_answer").value == tok.encode(pair.answer)[0]
    assert at.selectbox(key="_w_wrong").value == tok.encode(pair.wrong)[0]
    assert "intervene_patch_heads" in charts(at)


def test_prompts_of_different_lengths_are_refused_and_kept() -> None:
    at = PLAIN.open(PAGE, clean=CLEAN, corrupt="The cat drinks fire and water")
    assert any("same number of tokens" in w.value for w in at.warning)
    assert "intervene_patch_resid" not in charts(at)
    assert at.text_area(key="_w_corrupt").value == "The cat drinks fire and water"
    at.text_area(key="_w_corrupt").input("The dog drinks fire").run()
    assert not any("same number of tokens" in w.value for w in at.warning)
    assert "intervene_patch_resid" in charts(at)


def test_attribution_figures_equal_the_engine(tiny_loaded: LoadedModel) -> None:
    at = open_tab("Attribution", pos="4")
    trace = PLAIN.trace(tiny_loaded)
    token = at.selectbox(key="_w_attr_token").value
    attr = direct_logit_attribution(trace, tiny_loaded.model, 4, token)
    figs = charts(at)
    heads = figs["intervene_attr_heads"]["data"][0]
    np.testing.assert_allclose(values(heads["z"]), attr.head_grid, atol=1e-6)
    assert "pushes up" in heads["customdata"][0][0]
    other = figs["intervene_attr_other"]["data"][0]
    rest = [i for i, n in enumerate(attr.names) if not (n[0] == "L" and "_" not in n)]
    np.testing.assert_allclose(values(other["x"]), attr.contributions[rest], atol=1e-9)
    # one colour scale: the heads' heatmap and the bars span the largest share of any part
    largest = np.abs(attr.contributions).max()
    assert heads["zmax"] == pytest.approx(largest)
    assert figs["intervene_attr_other"]["layout"]["xaxis"]["range"][1] == pytest.approx(
        1.05 * largest
    )
    total = values(heads["z"]).sum() + values(other["x"]).sum()
    assert abs(total - float(trace.logits[4, token])) < 1e-4


def test_the_sublayer_lens_table_equals_the_engine(tiny_loaded: LoadedModel) -> None:
    at = open_tab("Attribution", pos="2")
    at.toggle(key="_w_sublayer_lens").set_value(True).run()
    lens = sublayer_lens(PLAIN.trace(tiny_loaded), tiny_loaded.model, k=1)
    table = table_with(at, "residual after")
    assert list(table["residual after"]) == lens.layer_labels
    # p is a number (right-aligned), written with four decimals
    np.testing.assert_allclose(table["its p"], lens.top_probs[:, 2, 0], rtol=1e-6)
    frame = next(d for d in at.dataframe if "residual after" in d.value.columns)
    assert list(shown_cells(frame)["its p"]) == [f"{p:.4f}" for p in lens.top_probs[:, 2, 0]]


def test_the_knock_out_preset_sets_text_heads_and_position() -> None:
    at = PLAIN.open(PAGE)
    preset = KNOCK_OUT_PRESETS[0]
    at.selectbox(key="_w_ko_preset").set_value(preset.name).run()
    assert not at.exception
    assert at.session_state["text"] == preset.text
    assert at.query_params["ablate"] in (preset.ablate, [preset.ablate])
    assert at.query_params["pos"] in (str(preset.pos), [str(preset.pos)])
    assert "intervene_ko_probs" in charts(at)


def test_the_presets_show_their_effect_on_the_bundled_model() -> None:
    loaded = load("bundled")
    preset = KNOCK_OUT_PRESETS[0]
    trace = run_with_trace(loaded.model, loaded.tokenizer, preset.text)
    assert loaded.tokenizer.display(int(trace.token_ids[preset.pos])) == "␣pur"
    ko = knock_out(loaded.model, trace, Ablation(frozenset({(1, 0), (1, 1)})))
    nxt = int(trace.token_ids[preset.pos + 1])
    before = _probs(ko.logits_before[preset.pos], trace)[nxt]
    after = _probs(ko.logits_after[preset.pos], trace)[nxt]
    assert round(before, 2) == 0.97 and round(after, 2) == 0.07  # the why text: 0.97 -> 0.07
    half = trace.n_tokens // 2
    rise = ko.loss_after[half:].mean() - ko.loss_before[half:].mean()
    assert 5.5 < rise < 6.5  # "by about 6 nats"
    assert abs(ko.loss_after[: half - 1].mean() - ko.loss_before[: half - 1].mean()) < 0.2
    single = knock_out(loaded.model, trace, Ablation(frozenset({(1, 0)})))
    assert 4.5 < single.loss_after[half:].mean() - single.loss_before[half:].mean() < 5.0
    helper = knock_out(loaded.model, trace, Ablation(frozenset({(0, 3)})))
    assert helper.loss_after[half:].mean() - helper.loss_before[half:].mean() > 1.0

    pair = PATCHING_PRESETS[0]
    tok = loaded.tokenizer
    clean, corrupt = tok.encode(pair.clean), tok.encode(pair.corrupt)
    result = activation_patching(
        loaded.model,
        clean,
        corrupt,
        answer=tok.encode(pair.answer)[0],
        wrong=tok.encode(pair.wrong)[0],
    )
    heads = result.restored(result.head_diff)
    assert int(np.argmax(heads[1])) == 0 and heads[1, 0] > 0.5  # 1.0 restores most in layer 1
    (where,) = [t for t, (a, b) in enumerate(zip(clean, corrupt, strict=True)) if a != b]
    resid = result.restored(result.resid_diff)
    assert resid[1, where] > 0.9  # the differing word's position, entering layer 1
