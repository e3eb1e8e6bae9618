"""Parity with Hugging Face `transformers` (a test dependency only, never used by the app).

A random `GPT2LMHeadModel` is saved with `save_pretrained`, together with a small GPT-2 byte-level
BPE that this file learns and writes (`vocab.json` + `merges.txt`); the engine loads that
directory and must compute the same logits, attention patterns and hidden states, generate the
same greedy tokens and tokenize the same way. The other direction: a checkpoint the engine saves
loads in `GPT2LMHeadModel.from_pretrained` with the same logits. Nothing is downloaded.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex
import torch
import transformers  # requirements-dev.txt; a missing install must fail, not skip
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel, load_directory, random_model, save_checkpoint
from engine.config import GPTConfig
from engine.model import GPT
from engine.trace import Trace
from tests.support import gpt2_bytes_to_unicode

# float32 throughout, the aimed-for tolerance. Measured worst differences on this model (values
# of order 1-5): logits 1.7e-6, attention 3.0e-7, hidden states 2.0e-6. A real bug (a missing
# bias, a wrong scale) shows as differences of order 1e-2 or more.
ATOL = 1e-5
RTOL = 1e-5

N_LAYER, N_HEAD, N_EMBD, N_POSITIONS = 3, 4, 64, 64

# HF's GPT-2 pre-tokenizer regex (tokenizers' ByteLevel), used to learn the merges.
HF_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

CORPUS = (
    "The quick brown fox jumps over the lazy dog. To be, or not to be, that is the question: "
    "whether 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune. "
    "Hello, world! Hello there, hello again. It's 2024 and I'll say they're here, we've won. "
    "    indented code: def f(x): return x * 2  # double\n\n"
    "1234567890 3.14 100% (parentheses) [brackets] {braces} <angle> \"quotes\" 'single'\n"
    "中文文本，你好世界。emoji 🙂🙂 naïve café\n"
)

PARITY_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! It's a test; isn't it? We'll see.",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand   runs     of spaces",
    "numbers: 1234567890, 3.14159, -42, 1e-5, 2024-11-29",
    "punctuation!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& (((",
    "中文测试：你好，世界！机器学习。",
    "emoji: 🙂 👍🏽 👨‍👩‍👧 🏳️‍🌈 ✨",
    "naïve café résumé Ångström",
    "mixed 中文 and English, 123 and emoji 🙂 together\r\nwith CRLF",
    "def f(x):\n    return {'a': [x ** 2 for x in range(10)]}  # comment\n",
    "'s 't 're 've 'm 'll 'd 'S 'T",
    "\u00a0no-break\u00a0spaces and zero\u200bwidth",
    "",
]


# --- a tiny GPT-2 byte-level BPE, learned here ----------------------------------------------------


def _learn_bpe(corpus: str, n_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE: ids 0..255 are the bytes in `bytes_to_unicode` order, then one id per
    merge in the order learned (most frequent pair first), then <|endoftext|>."""
    b2u = gpt2_bytes_to_unicode()
    vocab = {ch: i for i, ch in enumerate(b2u.values())}
    words = Counter(
        tuple(b2u[b] for b in w.encode("utf-8")) for w in regex.findall(HF_GPT2_PATTERN, corpus)
    )
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        candidates = [(c, p) for p, c in pairs.items() if p[0] + p[1] not in vocab]
        if not candidates:
            break
        _, (a, b) = max(candidates)
        merges.append((a, b))
        vocab[a + b] = len(vocab)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == (a, b):
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def _write_bpe(directory: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    lines = "".join(f"{a} {b}\n" for a, b in merges)
    (directory / "merges.txt").write_text("#version: 0.2\n" + lines, "utf-8")


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab, merges = _learn_bpe(CORPUS, n_merges=150)
    assert len(merges) == 150
    return vocab, merges


@pytest.fixture(scope="module")
def hf_dir(
    tmp_path_factory: pytest.TempPathFactory, bpe: tuple[dict[str, int], list[tuple[str, str]]]
) -> Path:
    vocab, merges = bpe
    directory = tmp_path_factory.mktemp("hf_gpt2")
    V = len(vocab)
    config = transformers.GPT2Config(
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_embd=N_EMBD,
        n_positions=N_POSITIONS,
        vocab_size=V,
        bos_token_id=V - 1,
        eos_token_id=V - 1,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # every parameter random (HF starts LayerNorms at 1/0, biases at 0)
        for name, param in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    _write_bpe(directory, vocab, merges)
    return directory


@pytest.fixture(scope="module")
def hf_model(hf_dir: Path) -> torch.nn.Module:
    return transformers.GPT2LMHeadModel.from_pretrained(
        hf_dir, attn_implementation="eager", local_files_only=True
    ).eval()


@pytest.fixture(scope="module")
def engine_loaded(hf_dir: Path) -> LoadedModel:
    return load_directory(hf_dir)


@pytest.fixture(scope="module")
def prompt_ids(engine_loaded: LoadedModel) -> list[int]:
    ids = engine_loaded.tokenizer.encode("Hello, world! To be, or not to be: 中文 🙂 1234")
    assert 20 < len(ids) < N_POSITIONS - 20
    return ids


# --- the model ------------------------------------------------------------------------------------


def test_engine_reads_the_hf_config_and_tokenizer(
    engine_loaded: LoadedModel, bpe: tuple[dict[str, int], list[tuple[str, str]]]
) -> None:
    vocab, _ = bpe
    assert engine_loaded.config == GPTConfig(
        n_layer=N_LAYER,
        n_head=N_HEAD,
        d_model=N_EMBD,
        n_ctx=N_POSITIONS,
        vocab_size=len(vocab),
        dropout=0.1,
    )
    assert engine_loaded.tokenizer.vocab_size == len(vocab)
    assert engine_loaded.tokenizer.eot_id == vocab["<|endoftext|>"]


def assert_matches_hugging_face(
    hf_model: torch.nn.Module, loaded: LoadedModel, ids: list[int], atol: float = ATOL
) -> None:
    """Logits (the recorded and the plain fused forward), every attention pattern and every
    hidden state of `loaded` equal `hf_model`'s on `ids`, at `atol` (float32)."""
    with torch.no_grad():
        out = hf_model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    trace: Trace = run_with_trace(loaded.model, loaded.tokenizer, ids)
    n_layer = loaded.config.n_layer

    def close(ours: np.ndarray, theirs: torch.Tensor, what: str) -> None:
        torch.testing.assert_close(
            torch.from_numpy(np.array(ours)),
            theirs[0],
            atol=atol,
            rtol=RTOL,
            msg=lambda m: f"{what}: {m}",
        )

    close(trace.logits, out.logits, "logits")
    with torch.no_grad():
        plain = loaded.model(torch.tensor([ids], device=loaded.model.device))  # fused path
    torch.testing.assert_close(plain.cpu(), out.logits, atol=atol, rtol=RTOL)
    assert len(out.attentions) == n_layer
    for layer in range(n_layer):
        close(trace.get("attn.hook_pattern", layer), out.attentions[layer], f"attention {layer}")
    # HF's hidden_states: [embeddings, after block 0, ..., after block L-2, ln_f(after block L-1)]
    assert len(out.hidden_states) == n_layer + 1
    for layer in range(n_layer):
        close(trace.get("hook_resid_pre", layer), out.hidden_states[layer], f"hidden {layer}")
    ln_f = loaded.model.transformer.ln_f
    gamma, beta = ln_f.weight.cpu().numpy(), ln_f.bias.cpu().numpy()
    final = trace["ln_final.hook_normalized"] * gamma + beta
    close(final, out.hidden_states[n_layer], "ln_f output")


def test_logits_attention_and_hidden_states_match_hugging_face(
    hf_model: torch.nn.Module, engine_loaded: LoadedModel, prompt_ids: list[int]
) -> None:
    assert_matches_hugging_face(hf_model, engine_loaded, prompt_ids)


def test_the_engine_on_the_tests_device_matches_hugging_face(
    hf_model: torch.nn.Module, hf_dir: Path, prompt_ids: list[int], device: torch.device
) -> None:
    """The same parity on the device given by `pytest --device` (cpu unless asked: run once with
    `--device cuda` on a GPU machine); the Trace still comes back as CPU numpy arrays."""
    loaded = load_directory(hf_dir)
    loaded.model.to(device)
    assert loaded.model.device.type == device.type
    assert_matches_hugging_face(hf_model, loaded, prompt_ids)


def _greedy(step: object, ids: list[int], n: int) -> list[int]:
    ids = list(ids)
    for _ in range(n):
        logits = step(torch.tensor([ids]))  # type: ignore[operator]
        ids.append(int(logits[0, -1].argmax()))
    return ids[-n:]


def test_twenty_greedy_tokens_are_identical(
    hf_model: torch.nn.Module, engine_loaded: LoadedModel, prompt_ids: list[int]
) -> None:
    prompt = prompt_ids[:12]
    with torch.no_grad():
        theirs = _greedy(lambda x: hf_model(x).logits, prompt, 20)
        ours = _greedy(engine_loaded.model, prompt, 20)
    assert ours == theirs
    assert len(set(ours)) > 1  # a real continuation, not one token repeated by accident


def test_a_checkpoint_saved_by_the_engine_loads_in_hugging_face(tmp_path: Path) -> None:
    config = GPTConfig(n_layer=2, n_head=2, d_model=32, n_ctx=32, vocab_size=4097)
    model: GPT = random_model(config, seed=11)
    with torch.no_grad():  # make LayerNorms and biases non-trivial too
        g = torch.Generator().manual_seed(1)
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn(param.shape, generator=g))
    directory = save_checkpoint(model, tmp_path / "ours", n_ranks=4096)
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(
        directory, output_loading_info=True, local_files_only=True
    )
    hf.eval()
    assert not info["missing_keys"]  # lm_head is tied to wte, not missing
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    ids = torch.tensor([[791, 3415, 2731, 389, 279, 1634, 13, 4096, 0, 4095]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=ATOL, rtol=RTOL)
    n_hf = sum(p.numel() for p in hf.parameters())  # the tied lm_head is counted once
    assert n_hf == config.n_params()


def test_a_non_default_mlp_width_epsilon_and_gelu_name_load_with_equal_logits(
    tmp_path: Path, hf_dir: Path
) -> None:
    """n_inner, layer_norm_epsilon and the gelu_pytorch_tanh spelling reach the engine."""
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=40,
        vocab_size=410,  # the learned tiny BPE's 407 ids and 3 unused rows
        n_inner=48,
        layer_norm_epsilon=1e-3,
        activation_function="gelu_pytorch_tanh",
        bos_token_id=406,
        eos_token_id=406,
        attn_implementation="eager",
    )
    torch.manual_seed(1)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # large LayerNorm gains, so a wrong epsilon would show
        for name, param in hf.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.5 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.1)
    hf.save_pretrained(tmp_path)
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((hf_dir / name).read_bytes())
    loaded = load_directory(tmp_path)
    assert (loaded.config.d_mlp, loaded.config.layer_norm_eps) == (48, 1e-3)
    ids = list(range(5, 45))
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(torch.tensor([ids])), hf(torch.tensor([ids])).logits, atol=ATOL, rtol=RTOL
        )


# --- the tokenizer --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_tokenizer(hf_dir: Path) -> object:
    return transformers.GPT2Tokenizer.from_pretrained(hf_dir, local_files_only=True)


@pytest.mark.parametrize("text", PARITY_TEXTS)
def test_tokenizer_ids_match_hugging_face(
    hf_tokenizer: object, engine_loaded: LoadedModel, text: str
) -> None:
    theirs = hf_tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    ours = engine_loaded.tokenizer.encode(text)
    assert ours == theirs
    assert engine_loaded.tokenizer.decode(ours) == text


def test_the_learned_merges_are_used(engine_loaded: LoadedModel) -> None:
    ids = engine_loaded.tokenizer.encode("The quick brown fox")
    assert len(ids) < len(b"The quick brown fox")  # merges apply, not only bytes
    assert max(ids) >= 256


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=st.text(max_size=50)
    | st.text(alphabet=" \t\n\r'sdmtlvre0123456789.,!?ab\u00a0\u3000中🙂", max_size=40)
)
def test_tokenizer_ids_match_hugging_face_on_generated_text(
    hf_tokenizer: object, engine_loaded: LoadedModel, text: str
) -> None:
    assume("<|endoftext|>" not in text)  # HF treats it as the special token; we, as text
    theirs = hf_tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    assert engine_loaded.tokenizer.encode(text) == theirs
