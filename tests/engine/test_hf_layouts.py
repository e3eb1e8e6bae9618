"""The GPT-2 checkpoints people have, each saved by `transformers` (or `tokenizers`,
`safetensors`) in its own layout, load through `engine.checkpoints.load_directory` and compute
what `transformers` computes: logits, every attention pattern and every hidden state at 1e-5
(float32), and the tokenizer gives `AutoTokenizer`'s ids on the strings below. Every refusal
names the key and its value. Nothing is downloaded: the tokenizers are trained here.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import transformers  # requirements-dev.txt; a missing install must fail, not skip
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from engine.capture import run_with_trace
from engine.checkpoints import (
    CheckpointError,
    LoadedModel,
    load_directory,
    random_model,
    save_checkpoint,
)
from engine.config import ACTIVATIONS, GPTConfig
from engine.lens.logit_lens import logit_lens
from engine.model import ACTIVATION_FUNCTIONS
from engine.tokenizer import tokenizer_json_bpe
from tests.engine.test_hf_parity import (
    CORPUS,
    PARITY_TEXTS,
    _learn_bpe,
    _write_bpe,
    assert_matches_hugging_face,
)

# At least 50 strings: English, Chinese, emoji, code, whitespace runs, 's, digits.
TEXTS = [
    *PARITY_TEXTS,
    "the",
    " the",
    "The",
    "THE END",
    "don't won't can't shouldn't",
    "John's book, the dogs' bowls, it's, IT'S, 'tis",
    "she'll we'd they've you're I'm",
    "a",
    " ",
    "  ",
    "\n",
    "\n\n\n\n",
    "\t\t\tindent",
    "word" + " " * 17 + "word",
    "trailing space ",
    " leading space",
    "0",
    "12",
    "123",
    "1234",
    "12345678901234567890",
    "3.14159265358979",
    "v1.2.3-beta+build.45",
    "2026-11-30T19:25:02Z",
    "$1,000,000.00 (USD)",
    "你好",
    "我爱机器学习和自然语言处理。",
    "日本語のテキスト、カタカナ",
    "한국어 텍스트",
    "Ελληνικά κείμενο",
    "Русский текст",
    "עברית ערבית العربية",
    "🙂",
    "🙂🙂🙂",
    "👩‍💻 coding at 3am ☕",
    "🇫🇷🇩🇪 flags",
    "import numpy as np\nx = np.arange(10)\nprint(x[::2])\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    '<html><body class="main">Hi</body></html>',
    "SELECT * FROM users WHERE id = 42;",
    "https://example.com/path?query=1&b=2#frag",
    "email@example.com",
    "CamelCaseIdentifier snake_case_identifier kebab-case",
    "\u00e9\u0301 combining acute",
    "x\u200by zero width",
    "\r\n\r\n windows lines",
    "mixed\t \t whitespace \n \n",
    "!!!???...",
    "The quick brown fox jumps over the lazy dog. " * 3,
]
assert len(TEXTS) >= 50

N_LAYER, N_HEAD, N_EMBD, N_POSITIONS = 3, 2, 16, 64
SHAKESPEARE = Path(__file__).resolve().parents[2] / "assets" / "corpus" / "shakespeare.txt.gz"
ENDOFTEXT = "<|endoftext|>"


# --- tokenizers, in every layout -----------------------------------------------------------------


def _trained_bpe(vocab_size: int = 420) -> HFTokenizer:
    """A byte-level BPE trained with the `tokenizers` library on CORPUS: `<|endoftext|>` = 0,
    the 256 bytes at 1-256 (in character order), then one id per merge."""
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 5 + TEXTS, trainer)
    return tok


def _save_fast(tok: HFTokenizer, directory: Path) -> None:
    """`transformers` 5 `save_pretrained` of a fast tokenizer: tokenizer.json + its config."""
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=ENDOFTEXT, bos_token=ENDOFTEXT
    )
    fast.save_pretrained(directory)


def _layout_gpt2_ids_tokenizer_json(directory: Path) -> None:
    """GPT-2's id layout (the bytes first, `<|endoftext|>` last), saved by transformers 5."""
    vocab, merges = _learn_bpe(CORPUS, n_merges=150)
    source = directory / "source"
    source.mkdir()
    _write_bpe(source, vocab, merges)
    slow = transformers.GPT2Tokenizer(str(source / "vocab.json"), str(source / "merges.txt"))
    slow.save_pretrained(directory)
    shutil.rmtree(source)
    for name in ("vocab.json", "merges.txt"):  # only tokenizer.json, as transformers 5 writes
        (directory / name).unlink(missing_ok=True)


def _layout_trained_tokenizer_json(directory: Path) -> None:
    _save_fast(_trained_bpe(), directory)


def _layout_trained_vocab_and_merges(directory: Path) -> None:
    """The `tokenizers` library's own files: vocab.json + merges.txt, specials first."""
    _trained_bpe().model.save(str(directory))


def _layout_ids_in_no_merge_order(directory: Path) -> None:
    """tokenizer.json whose merged tokens' ids run backwards against the merges order."""
    _save_fast(_trained_bpe(), directory)
    path = directory / "tokenizer.json"
    raw = json.loads(path.read_text("utf-8"))
    vocab = raw["model"]["vocab"]
    merged = sorted((i, t) for t, i in vocab.items() if i > 256)
    for (i, _), (_, token) in zip(merged, reversed(merged), strict=True):
        vocab[token] = i
    path.write_text(json.dumps(raw, ensure_ascii=False), "utf-8")


TOKENIZER_LAYOUTS = {
    "gpt2-ids-tokenizer.json": _layout_gpt2_ids_tokenizer_json,
    "trained-tokenizer.json": _layout_trained_tokenizer_json,
    "trained-vocab-merges": _layout_trained_vocab_and_merges,
    "ids-in-no-merge-order": _layout_ids_in_no_merge_order,
}


def _reference_tokenizer(directory: Path, layout: str) -> object:
    if layout == "trained-vocab-merges":  # no tokenizer_config.json: name the class
        return transformers.GPT2Tokenizer(
            str(directory / "vocab.json"), str(directory / "merges.txt")
        )
    return transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)


def _random_hf(vocab_size: int, seed: int = 0, **options: object) -> torch.nn.Module:
    """A GPT2LMHeadModel of the test shape with every parameter random (LayerNorm gains away
    from 1, biases away from 0), so that any misread option shows."""
    config = transformers.GPT2Config(
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_embd=N_EMBD,
        n_positions=N_POSITIONS,
        vocab_size=vocab_size,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
        **options,
    )
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.3 * torch.randn_like(param))
            elif name.endswith("mlp.c_fc.weight"):  # MLP inputs past 6 and 10: relu6, gelu_10
                param.normal_(0.0, 1.5)
            elif name.endswith("mlp.c_proj.weight"):  # ... and its output back to order 1
                param.normal_(0.0, 0.02)
            else:
                param.normal_(0.0, 0.2)
    return model


@pytest.fixture(scope="module", params=list(TOKENIZER_LAYOUTS))
def tokenizer_layout(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, object, torch.nn.Module, LoadedModel]:
    """(layout, directory, HF's tokenizer, HF's model, the engine's load) for one layout."""
    layout = request.param
    directory = tmp_path_factory.mktemp(layout)
    TOKENIZER_LAYOUTS[layout](directory)
    reference = _reference_tokenizer(directory, layout)
    hf = _random_hf(len(reference))  # type: ignore[arg-type]
    hf.save_pretrained(directory)
    return layout, directory, reference, hf, load_directory(directory)


def test_each_tokenizer_layout_gives_hugging_faces_ids_on_every_text(
    tokenizer_layout: tuple[str, Path, object, torch.nn.Module, LoadedModel],
) -> None:
    layout, _, reference, _, loaded = tokenizer_layout
    for text in TEXTS:
        theirs = reference.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
        ours = loaded.tokenizer.encode(text)
        assert ours == theirs, (layout, text)
        assert loaded.tokenizer.decode(ours) == text
        assert list(loaded.tokenizer.encode_with_steps(text).ids) == ours
    merged = loaded.tokenizer.encode("The quick brown fox")
    assert len(merged) < len(b"The quick brown fox")  # the merges apply


def test_each_tokenizer_layout_knows_its_special_tokens_by_name(
    tokenizer_layout: tuple[str, Path, object, torch.nn.Module, LoadedModel],
) -> None:
    _, _, reference, _, loaded = tokenizer_layout
    eot = reference.convert_tokens_to_ids(ENDOFTEXT)  # type: ignore[attr-defined]
    tok = loaded.tokenizer
    assert tok.eot_id == eot
    assert tok.special_tokens[ENDOFTEXT] == eot
    assert tok.is_special(eot) and not tok.is_special(tok.encode("a")[0])
    assert tok.display(eot) == ENDOFTEXT
    assert ENDOFTEXT not in [tok.display(i) for i in tok.encode(f"a {ENDOFTEXT} b")]
    assert tok.vocab_size == len(reference)  # type: ignore[arg-type]
    for i in range(tok.vocab_size):  # every id decodes to HF's bytes for it
        theirs = reference.convert_ids_to_tokens(i)  # type: ignore[attr-defined]
        if i != eot:
            assert tok.token_id(tok.token_bytes(i)) == i
            assert tok.decode([i]) == reference.decode([i])  # type: ignore[attr-defined]
        assert theirs is not None


def test_each_tokenizer_layout_loads_a_model_equal_to_hugging_face(
    tokenizer_layout: tuple[str, Path, object, torch.nn.Module, LoadedModel],
) -> None:
    _, _, _, hf, loaded = tokenizer_layout
    ids = loaded.tokenizer.encode("Hello, world! It's 2024: 中文 🙂 def f(x): return x")
    assert_matches_hugging_face(hf, loaded, ids[:N_POSITIONS])


# --- weights, in every layout --------------------------------------------------------------------


VOCAB = 420  # rows of the weight-layout models, the trained tokenizer's size


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    _save_fast(_trained_bpe(), directory)
    return directory


def _with_tokenizer(directory: Path, tokenizer_files: Path) -> Path:
    for path in tokenizer_files.iterdir():
        shutil.copy(path, directory / path.name)
    return directory


def _ids(loaded: LoadedModel) -> list[int]:
    ids = loaded.tokenizer.encode("To be, or not to be: that is the question. 中文 🙂 1234")
    assert 20 < len(ids) <= N_POSITIONS
    return ids


def _save_lm_head_only(hf: torch.nn.Module, directory: Path) -> None:
    """`safetensors.torch.save_model`: the tied matrix is stored once, as lm_head.weight."""
    hf.config.save_pretrained(directory)
    safetensors.torch.save_model(hf, str(directory / "model.safetensors"))


def _save_sharded_bin(hf: torch.nn.Module, directory: Path) -> None:
    """Sharded pytorch_model-0000k-of-0000n.bin + pytorch_model.bin.index.json, in the layout
    transformers 4 wrote (transformers 5 writes safetensors only)."""
    hf.config.save_pretrained(directory)
    state = {k: v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    keys = sorted(state)
    shards = [keys[i::3] for i in range(3)]
    weight_map = {}
    for n, shard in enumerate(shards, start=1):
        name = f"pytorch_model-{n:05d}-of-00003.bin"
        torch.save({k: state[k] for k in shard}, directory / name)
        weight_map.update(dict.fromkeys(shard, name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index), "utf-8")


WEIGHT_LAYOUTS = {
    "save_pretrained": lambda hf, d: hf.save_pretrained(d),
    "lm_head-only": _save_lm_head_only,
    "sharded-safetensors": lambda hf, d: hf.save_pretrained(d, max_shard_size="20KB"),
    "sharded-bin": _save_sharded_bin,
}


@pytest.mark.parametrize("layout", list(WEIGHT_LAYOUTS))
def test_each_weight_layout_loads_equal_to_hugging_face(
    tmp_path: Path, tokenizer_files: Path, layout: str
) -> None:
    hf = _random_hf(VOCAB, seed=3)
    WEIGHT_LAYOUTS[layout](hf, tmp_path)
    if layout.startswith("sharded"):
        assert len(list(tmp_path.glob("*.index.json"))) == 1
        assert len([p for p in tmp_path.iterdir() if p.suffix in (".bin", ".safetensors")]) > 1
    loaded = load_directory(_with_tokenizer(tmp_path, tokenizer_files))
    assert loaded.stored_dtype == "float32"
    assert_matches_hugging_face(hf, loaded, _ids(loaded))


@pytest.mark.parametrize("layout", ["save_pretrained", "sharded-safetensors", "sharded-bin"])
def test_untied_output_layer_is_the_unembedding_in_every_layout(
    tmp_path: Path, tokenizer_files: Path, layout: str
) -> None:
    hf = _random_hf(VOCAB, seed=4, tie_word_embeddings=False)
    assert not torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)
    if layout == "sharded-bin":  # keep lm_head: it is the model's own here
        hf.config.save_pretrained(tmp_path)
        torch.save(dict(hf.state_dict()), tmp_path / "w.bin")
        index = {"weight_map": dict.fromkeys(hf.state_dict(), "w.bin")}
        (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index), "utf-8")
    else:
        WEIGHT_LAYOUTS[layout](hf, tmp_path)
    loaded = load_directory(_with_tokenizer(tmp_path, tokenizer_files))
    assert not loaded.config.tie_word_embeddings
    assert torch.equal(loaded.model.lm_head_weight, hf.lm_head.weight)
    assert torch.equal(loaded.model.embedding_weight(), hf.transformer.wte.weight)
    assert loaded.config.n_params() == sum(p.numel() for p in hf.parameters())
    assert_matches_hugging_face(hf, loaded, _ids(loaded))
    resid = torch.randn(5, N_EMBD)  # the logit lens's unembedding is lm_head, not wte
    expected = hf.lm_head(hf.transformer.ln_f(resid))
    torch.testing.assert_close(loaded.model.unembed(resid), expected, atol=1e-5, rtol=1e-5)
    ids = _ids(loaded)
    lens = logit_lens(run_with_trace(loaded.model, loaded.tokenizer, ids), loaded.model, k=5)
    with torch.no_grad():
        hidden = hf(torch.tensor([ids]), output_hidden_states=True).hidden_states
        for layer in range(N_LAYER):  # every row, read through HF's own ln_f and lm_head
            probs = torch.softmax(hf.lm_head(hf.transformer.ln_f(hidden[layer][0])), dim=-1)
            top = probs.topk(5)
            assert (lens.top_ids[layer] == top.indices.numpy()).all(), layer
            np.testing.assert_allclose(lens.top_probs[layer], top.values.numpy(), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_computed_in_float32_and_recorded(
    tmp_path: Path, tokenizer_files: Path, dtype: torch.dtype
) -> None:
    hf = _random_hf(VOCAB, seed=5)
    hf.to(dtype).save_pretrained(tmp_path)
    loaded = load_directory(_with_tokenizer(tmp_path, tokenizer_files))
    assert loaded.stored_dtype == str(dtype).removeprefix("torch.")
    assert loaded.model.lm_head_weight.dtype == torch.float32
    assert_matches_hugging_face(hf.float(), loaded, _ids(loaded))


# --- every GPT2Config option that changes the function --------------------------------------------


OPTIONS = [
    *({"activation_function": name} for name in ACTIVATIONS),
    {"scale_attn_weights": False},
    {"scale_attn_by_inverse_layer_idx": True},
    {"reorder_and_upcast_attn": True},
    {"scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True},
    {"layer_norm_epsilon": 0.3},
    {"n_inner": 24},
    {"n_inner": 24, "activation_function": "relu", "tie_word_embeddings": False},
]


def test_the_activation_table_covers_every_name_the_config_accepts() -> None:
    assert set(ACTIVATION_FUNCTIONS) == set(ACTIVATIONS)
    usable = set(transformers.activations.ACT2CLS) - {"prelu", "xielu"}  # learned parameters
    assert set(ACTIVATIONS) == usable


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_every_config_option_computes_what_hugging_face_computes(
    tmp_path: Path, tokenizer_files: Path, options: dict[str, object]
) -> None:
    hf = _random_hf(VOCAB, seed=6, **options)
    hf.save_pretrained(tmp_path)
    loaded = load_directory(_with_tokenizer(tmp_path, tokenizer_files))
    # scores of order 10 with these weights: an unscaled or misscaled attention shows clearly
    assert_matches_hugging_face(hf, loaded, _ids(loaded))


# --- refusals name the key and its value ----------------------------------------------------


def _tokenizer_json(tokenizer_files: Path, tmp_path: Path, change: object) -> Path:
    raw = json.loads((tokenizer_files / "tokenizer.json").read_text("utf-8"))
    change(raw)  # type: ignore[operator]
    directory = _with_tokenizer(tmp_path, tokenizer_files)
    (directory / "tokenizer.json").write_text(json.dumps(raw), "utf-8")
    _random_hf(VOCAB).save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["model"].update(type="WordPiece"), "model.type = 'WordPiece' is not supp"),
        (lambda r: r["model"].update(type="Unigram"), "model.type = 'Unigram' is not supported"),
        (lambda r: r["model"].update(dropout=0.1), "model.dropout = 0.1 is not supported"),
        (
            lambda r: r["model"].update(continuing_subword_prefix="##"),
            "model.continuing_subword_prefix = '##' is not supported",
        ),
        (lambda r: r["model"].update(byte_fallback=True), "model.byte_fallback = True is not"),
        (lambda r: r.update(normalizer={"type": "NFC"}), "normalizer.type = 'NFC' is not"),
        (
            lambda r: r.update(pre_tokenizer={"type": "Whitespace"}),
            "pre_tokenizer.type = 'Whitespace' is not supported",
        ),
        (
            lambda r: r["pre_tokenizer"].update(add_prefix_space=True),
            "pre_tokenizer.add_prefix_space = True is not supported",
        ),
        (
            lambda r: r["pre_tokenizer"].update(use_regex=False),
            "pre_tokenizer.use_regex = False is not supported",
        ),
        (lambda r: r["model"]["merges"].append(["x", "y", "z"]), "is not a pair"),
        (lambda r: r["model"]["vocab"].pop("!"), r"has no token for the byte b'!'"),
    ],
)
def test_a_tokenizer_json_this_engine_does_not_compute_is_refused_naming_key_and_value(
    tmp_path: Path, tokenizer_files: Path, change: object, message: str
) -> None:
    directory = _tokenizer_json(tokenizer_files, tmp_path, change)
    with pytest.raises(CheckpointError, match=message) as err:
        load_directory(directory)
    assert "tokenizer.json" in str(err.value)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ({"weight_map": {"a": "../outside.safetensors"}}, "shard '../outside.safetensors', not"),
        ({"weight_map": {"a": "missing.safetensors"}}, "'missing.safetensors', which is not in"),
        ({"weights": {}}, "has no weight_map"),
        ([1, 2], "has no weight_map"),
    ],
)
def test_a_bad_shard_index_is_refused_naming_the_problem(
    tmp_path: Path, tokenizer_files: Path, index: object, message: str
) -> None:
    hf = _random_hf(VOCAB)
    hf.config.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index), "utf-8")
    with pytest.raises(CheckpointError, match=message):
        load_directory(_with_tokenizer(tmp_path, tokenizer_files))


def test_a_tied_checkpoint_without_any_embedding_names_the_missing_weight(
    tmp_path: Path, tokenizer_files: Path
) -> None:
    hf = _random_hf(VOCAB)
    hf.config.save_pretrained(tmp_path)
    state = {k: v for k, v in hf.state_dict().items() if "wte" not in k and "lm_head" not in k}
    safetensors.torch.save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"lacks 1 weight.*'transformer.wte.weight'"):
        load_directory(_with_tokenizer(tmp_path, tokenizer_files))


def test_an_untied_checkpoint_without_its_output_layer_names_it(
    tmp_path: Path, tokenizer_files: Path
) -> None:
    hf = _random_hf(VOCAB, tie_word_embeddings=False)
    hf.config.save_pretrained(tmp_path)
    state = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    safetensors.torch.save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"lacks 1 weight.*'lm_head.weight'"):
        load_directory(_with_tokenizer(tmp_path, tokenizer_files))


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=st.text(max_size=60)
    | st.text(alphabet=" \t\n'sdmtlvre0123456789.,!?abcdefghio Thequick中文你好🙂", max_size=60)
    | st.lists(st.sampled_from(TEXTS), max_size=4).map(" ".join)
)
def test_each_tokenizer_layout_gives_hugging_faces_ids_on_generated_text(
    tokenizer_layout: tuple[str, Path, object, torch.nn.Module, LoadedModel], text: str
) -> None:
    layout, _, reference, _, loaded = tokenizer_layout
    assume(ENDOFTEXT not in text)  # HF parses it as the special token; the engine, as text
    theirs = reference.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    assert loaded.tokenizer.encode(text) == theirs, (layout, text)


def test_an_engine_checkpoint_with_every_option_round_trips_and_loads_in_hugging_face(
    tmp_path: Path,
) -> None:
    """save_checkpoint writes the options to config.json: the engine and transformers read back
    the same function."""
    config = GPTConfig(
        n_layer=3,
        n_head=2,
        d_model=16,
        n_ctx=32,
        vocab_size=300,
        d_mlp=24,
        activation="silu",
        scale_attn_weights=False,
        scale_attn_by_inverse_layer_idx=True,
        tie_word_embeddings=False,
    )
    model = random_model(config, seed=2)
    directory = save_checkpoint(model, tmp_path / "ours", n_ranks=299)
    loaded = load_directory(directory)
    assert loaded.config == config
    hf = transformers.GPT2LMHeadModel.from_pretrained(
        directory, attn_implementation="eager", local_files_only=True
    ).eval()
    assert not torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)
    ids = list(range(40, 70))
    assert_matches_hugging_face(hf, loaded, ids)


def test_a_bpe_trained_on_real_text_gives_hugging_faces_ids_on_held_out_text(
    tmp_path: Path,
) -> None:
    """tiktoken merges any adjacent pair that forms a token, transformers only listed pairs;
    on a BPE trained by `tokenizers` on the bundled Shakespeare (4,000 ids) the two agree on
    every one of ~210,000 held-out tokens."""
    text = gzip.open(SHAKESPEARE, "rt", encoding="utf-8").read().replace(ENDOFTEXT, "\n")
    train, held = text[:1_000_000], text[-600_000:]
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([train[i : i + 10_000] for i in range(0, len(train), 10_000)], trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    ours = tokenizer_json_bpe(tmp_path / "tokenizer.json")
    chunks = [held[i : i + 2000] for i in range(0, len(held), 2000)]
    theirs = tok.encode_batch(chunks, add_special_tokens=False)
    assert sum(len(e.ids) for e in theirs) > 100_000
    for chunk, expected in zip(chunks, theirs, strict=True):
        assert ours.encode(chunk) == expected.ids, chunk
