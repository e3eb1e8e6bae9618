"""`run_with_trace`: the one function that runs the model for the UI and returns a `Trace`."""

from __future__ import annotations

import math
import operator

import numpy as np
import torch

from engine.config import GPTConfig
from engine.model import GPT, Editor
from engine.names import canonical_names, parse_name, symbol_sizes
from engine.sampling import gap_ids, n_valid_ids
from engine.tokenizer import Tokenizer
from engine.trace import Trace


def prepare_ids(
    tokenizer: Tokenizer, text_or_ids: str | list[int], n_ctx: int
) -> tuple[list[int], int]:
    """Token ids cut to the context (the first `n_ctx` are kept) and how many were dropped."""
    if isinstance(text_or_ids, str):
        ids = tokenizer.encode(text_or_ids)
    else:
        try:
            ids = [operator.index(i) for i in text_or_ids]
        except TypeError as err:
            raise ValueError(f"token ids must be integers: {err}") from err
    if not ids:
        raise ValueError("the text is empty: there is nothing to run the model on")
    bad = [i for i in ids if not 0 <= int(i) < tokenizer.vocab_size]
    if bad:
        raise ValueError(
            f"token id {bad[0]} is outside the vocabulary (0..{tokenizer.vocab_size - 1})"
        )
    return ids[:n_ctx], max(0, len(ids) - n_ctx)


def trace_nbytes(
    config: GPTConfig,
    n_tokens: int,
    dtype: type[np.floating] = np.float32,
    large_dtype: type[np.floating] | None = None,
) -> int:
    """The exact `Trace.nbytes()` of an evaluation pass (`dropout_p=0`) over `n_tokens`, known
    before running the model: what the app uses to bound its memory. Sums every name of
    `canonical_names` at its shape in `engine.names.SITES`, in `large_dtype` (default `dtype`)
    for the "large" sites and `dtype` for the rest, plus the int64 token ids. The [H, T, T]
    maps dominate long texts. Like `Trace.nbytes`, it counts an array once per name, so block
    i's resid_post and block i+1's resid_pre (one array) count twice: an upper bound of the
    memory the Trace holds."""
    sizes = symbol_sizes(config, n_tokens)
    itemsize = {
        "small": np.dtype(dtype).itemsize,
        "large": np.dtype(large_dtype or dtype).itemsize,
    }
    total = 8 * n_tokens  # the token ids
    for name in canonical_names(config.n_layer):
        site = parse_name(name, config.n_layer)[0]
        total += itemsize[site.size] * math.prod(site.dims(sizes))
    return total


def _torch_dtype(dtype: type[np.floating]) -> torch.dtype:
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"a Trace stores float32 or float16, not {np.dtype(dtype).name}")
    return torch.float16 if np.dtype(dtype) == np.float16 else torch.float32


def run_with_trace(
    model: GPT,
    tokenizer: Tokenizer,
    text_or_ids: str | list[int],
    *,
    model_name: str = "",
    dtype: type[np.floating] = np.float32,
    large_dtype: type[np.floating] | None = None,
    dropout_p: float = 0.0,
    seed: int | None = None,
    editor: Editor | None = None,
) -> Trace:
    """Run one forward pass and record every canonical activation.

    The recorder lives in this call only (no hooks on the shared model), so many threads may
    trace at once. `dtype` sets the stored precision (float16 halves a long text's Trace);
    `large_dtype`, when given, overrides it for the sites that grow with T * T or T * d_mlp
    (size "large" in `engine.names.SITES`: attention scores and patterns, the MLP's hidden
    activations), e.g. float16 there and float32 for the residual stream. Each activation is
    converted as soon as it is recorded, so a float16 pass frees the float32 maps during the
    forward pass.
    `dropout_p` > 0 runs a seeded dropout pass (the dropout page) without touching the
    model's mode; it then also records each layer's `attn.hook_pattern_dropped`.
    `editor` (per call, like the recorder: `GPT.forward`) changes the run at editable sites, e.g.
    an ablation from `engine.interventions`; the Trace then records the edited run.
    """
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p!r}")
    ids, n_dropped = prepare_ids(tokenizer, text_or_ids, model.config.n_ctx)
    acts: dict[str, np.ndarray] = {}
    small, large = _torch_dtype(dtype), _torch_dtype(large_dtype or dtype)

    # The last tensor recorded and its array: block i's resid_post is block i+1's resid_pre
    # (the same tensor, recorded twice in a row), so both names share one array.
    last: list[tuple[torch.Tensor, torch.dtype, np.ndarray]] = []
    n_layer = model.config.n_layer

    def recorder(name: str, tensor: torch.Tensor) -> None:
        site = parse_name(name, n_layer)
        if site is None:
            raise ValueError(f"the model recorded a non-canonical activation name {name!r}")
        target = large if site[0].size == "large" else small
        if last and last[0][0] is tensor and last[0][1] == target:
            acts[name] = last[0][2]
            return
        # a view when nothing needs converting (on the CPU, .cpu() is the tensor itself)
        arr = tensor[0].to(target).contiguous().cpu().numpy()
        arr.flags.writeable = False
        acts[name] = arr
        last[:] = [(tensor, target, arr)]

    generator = None
    if dropout_p > 0.0:
        generator = torch.Generator(device=model.device).manual_seed(0 if seed is None else seed)
    with torch.inference_mode():
        model(
            torch.tensor([ids], dtype=torch.long, device=model.device),
            recorder=recorder,
            dropout_p=dropout_p,
            generator=generator,
            editor=editor,
        )
    token_ids = np.asarray(ids, dtype=np.int64)
    token_ids.flags.writeable = False
    prompt = text_or_ids if isinstance(text_or_ids, str) else tokenizer.decode(ids)
    return Trace(
        prompt=prompt,
        token_ids=token_ids,
        token_strs=tuple(tokenizer.labels(ids)),
        config=model.config,
        acts=acts,
        model_name=model_name,
        n_tokens_dropped=n_dropped,
        dropout_p=float(dropout_p),
        n_valid_ids=n_valid_ids(tokenizer, model.config.vocab_size),
        gap_ids=gap_ids(tokenizer, model.config.vocab_size),
    )
