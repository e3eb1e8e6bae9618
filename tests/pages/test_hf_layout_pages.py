"""A checkpoint in the layouts `transformers` 5 and `tokenizers` write (tokenizer.json only, ids in
no merge order with `<|endoftext|>` = 0, an untied output layer, sharded safetensors in bfloat16,
non-default GPT2Config options) opens every page with no exception and no error box."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests import support
from tests.engine.test_hf_layouts import _layout_ids_in_no_merge_order, _random_hf

PAGES = sorted(str(p.relative_to(support.ROOT)) for p in (support.ROOT / "pages").glob("*.py"))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    folder = tmp_path_factory.mktemp("models")
    directory = folder / "hf5"
    directory.mkdir()
    _layout_ids_in_no_merge_order(directory)
    hf = _random_hf(
        420,
        seed=9,
        tie_word_embeddings=False,
        activation_function="quick_gelu",
        scale_attn_by_inverse_layer_idx=True,
    )
    hf.to(torch.bfloat16).save_pretrained(directory, max_shard_size="20KB")
    assert (directory / "model.safetensors.index.json").is_file()
    return folder


@pytest.mark.parametrize("page", ["app.py", *PAGES])
def test_every_page_opens_a_transformers_5_checkpoint(
    page: str, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(models_dir))
    at = AppTest.from_file(str(support.ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "hf5"
    at.query_params["text"] = "It's 2024: 中文 🙂 def f(x): return x"
    at.run()
    if page != "app.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert dict((s.label, s.value) for s in at.sidebar.selectbox)["Model"] == "hf5"


def test_the_pages_say_what_such_a_checkpoint_is(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model box says the weights were stored in bfloat16, the Tokens page names the special
    tokens by their own ids (not as the last id of a cl100k cut), and the Output page says the
    logits come from the model's own output matrix (in its formula too)."""
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(models_dir))
    at = AppTest.from_file(str(support.ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "hf5"
    at.query_params["text"] = "It's 2024"
    at.run()
    assert any("stored as bfloat16" in c.value for c in at.sidebar.caption)
    at.switch_page("pages/1_Tokens.py").run()
    tokens_info = " ".join(i.value for i in at.info)
    assert "`<|endoftext|>` = id 0" in tokens_info.replace("\\", "")
    assert "vocab.json" not in tokens_info
    at.switch_page("pages/8_Output.py").run()
    assert any("own output matrix (lm_head)" in i.value for i in at.info)
    # the formula and the sentence above it name the unembedding W_U, not the embedding table
    assert r"\text{logits}_i = \mathrm{ln_f}(x_i)\, W_U" in at.latex[0].value
    assert any("separate from its token-embedding table" in m.value for m in at.markdown)
