"""Cause and effect: ablate heads and MLPs, patch activations from a second run, and attribute a
logit to every component.

Every intervention here is an *editor* (`engine.model.Editor`) handed to one forward pass, the
way the recorder is: nothing is registered on the shared model, so threads with and without
interventions can use one model at once (TransformerLens's `run_with_hooks`, per call).

Definitions and sources:

- **Ablation** of a head: replace the head's output z (`blocks.l.attn.hook_z[:, h]`, the
  pattern-weighted values, before W_O) by zeros (zero-ablation) or by its mean over the text's
  positions (mean-ablation), and run the rest of the model on that. Olsson et al. 2022, "In-context
  Learning and Induction Heads" (Transformer Circuits Thread), ablate induction heads this way to
  show that they cause in-context copying; Wang et al. 2022 (below) use mean-ablation. An MLP is
  ablated the same way at its output `blocks.l.hook_mlp_out`. The mean is over the positions of
  the same text (the text is the reference distribution): a constant vector at every position,
  so on a one-token text mean-ablation changes nothing.
- **Activation patching** (causal tracing): run a clean and a corrupted prompt of the same token
  length, then rerun the corrupted one with one activation replaced by its value from the clean
  run, and measure how much of the clean behaviour comes back. Meng et al. 2022, "Locating and
  Editing Factual Associations in GPT" (NeurIPS), patch the residual stream at a layer and
  position; Wang et al. 2022, "Interpretability in the Wild: a Circuit for Indirect Object
  Identification in GPT-2 small", patch heads and measure the **logit difference**
  logit(answer) - logit(wrong) at the last position. **Restored fraction**: (patched - corrupted)
  / (clean - corrupted) of that difference: 0 is the corrupted run, 1 the clean run.
- **Direct logit attribution**: the final residual stream at a position is a sum of what each
  component wrote (token and position embeddings, every head's z_h W_O^h, each layer's attention
  bias b_O, every MLP's output). `ln_f` is linear once its scale (sqrt(var + eps), a number per
  position) is held at the value of the real run, so the token's logit splits exactly into one
  term per component, plus ln_f's bias beta times the unembedding. Elhage et al. 2021, "A
  Mathematical Framework for Transformer Circuits" (Transformer Circuits Thread); the "frozen
  LayerNorm scale" is how TransformerLens's `apply_ln_to_stack` does it.
- **Logit lens after every sub-layer**: `sublayer_lens` (nostalgebraist 2020) reads the residual
  after each attention block (`hook_resid_mid`) as well as after each MLP (`hook_resid_post`).

Shapes: T tokens, V vocabulary, L layers, H heads, d width, dh head width, C components.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from engine.capture import prepare_ids, run_with_trace
from engine.config import GPTConfig
from engine.lens.logit_lens import LogitLens, logit_lens
from engine.model import EDITABLE_SITES, GPT, Editor
from engine.names import act_name, parse_name
from engine.tokenizer import Tokenizer
from engine.trace import Trace

MODES = ("zero", "mean")
Progress = Callable[[int, int], None]  # (runs done, runs in all)


def _no_progress(done: int, total: int) -> None:
    """The progress callback that reports nothing."""


# --- ablation ------------------------------------------------------------------------------


def parse_heads(spec: str) -> frozenset[tuple[int, int]]:
    """Heads written "L.H[,L.H...]" (layer and head counted from 0, e.g. "1.2,0.3") as a set of
    (layer, head); an empty or blank string is the empty set. Raises ValueError for anything
    else (the message quotes the bad part)."""
    heads = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        layer, dot, head = part.partition(".")
        if not (dot and layer.isdigit() and head.isdigit()) or len(part) > 12:
            raise ValueError(f"{part[:20]!r} is not a head: write layer.head, e.g. 1.2")
        heads.add((int(layer), int(head)))
    return frozenset(heads)


def format_heads(heads: Iterable[tuple[int, int]]) -> str:
    """The inverse of `parse_heads`: "0.3,1.2", sorted by layer then head."""
    return ",".join(f"{layer}.{head}" for layer, head in sorted(heads))


@dataclass(frozen=True)
class Ablation:
    """Which heads and MLPs to knock out, and how.

    heads: (layer, head) pairs whose z (before W_O) is replaced.
    mlps: layers whose MLP output is replaced.
    mode: "zero" (replace by zeros) or "mean" (by its mean over the text's positions).
    Raises ValueError for another mode or a negative index; `check(config)` checks the ranges.
    """

    heads: frozenset[tuple[int, int]] = frozenset()
    mlps: frozenset[int] = frozenset()
    mode: str = "zero"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ablation mode must be 'zero' or 'mean', got {self.mode!r}")
        heads = frozenset((int(layer), int(head)) for layer, head in self.heads)
        mlps = frozenset(int(layer) for layer in self.mlps)
        if any(min(h) < 0 for h in heads) or any(m < 0 for m in mlps):
            raise ValueError("layers and heads are counted from 0: no negative index")
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "mlps", mlps)

    @property
    def empty(self) -> bool:
        """Nothing is ablated (the run is the model's own)."""
        return not self.heads and not self.mlps

    def check(self, config: GPTConfig) -> None:
        """Raise ValueError when a head or MLP is outside `config`'s layers and heads."""
        for layer, head in sorted(self.heads):
            if layer >= config.n_layer or head >= config.n_head:
                raise ValueError(
                    f"head {layer}.{head} does not exist: this model has layers 0 to "
                    f"{config.n_layer - 1} and heads 0 to {config.n_head - 1}"
                )
        for layer in sorted(self.mlps):
            if layer >= config.n_layer:
                raise ValueError(
                    f"MLP {layer} does not exist: this model has layers 0 to {config.n_layer - 1}"
                )

    def editor(self) -> Editor:
        """The editor that applies this ablation to a forward pass (every batch row)."""
        z_heads: dict[str, list[int]] = {}
        for layer, head in sorted(self.heads):
            z_heads.setdefault(act_name("attn.hook_z", layer), []).append(head)
        mlp_names = {act_name("hook_mlp_out", layer) for layer in self.mlps}
        mean = self.mode == "mean"

        def edit(name: str, tensor: Tensor) -> Tensor:
            if name in z_heads:  # z [B, T, H, dh]
                heads = z_heads[name]
                out = tensor.clone()
                part = out[:, :, heads, :]
                out[:, :, heads, :] = part.mean(dim=1, keepdim=True) if mean else 0.0
                return out
            if name in mlp_names:  # mlp_out [B, T, d]
                return tensor.mean(dim=1, keepdim=True).expand_as(tensor) if mean else tensor * 0
            return tensor

        return edit


def _ids_tensor(model: GPT, ids: Sequence[int]) -> Tensor:
    return torch.tensor([list(ids)], dtype=torch.long, device=model.device)


def run_logits(model: GPT, ids: Sequence[int], editor: Editor | None = None) -> np.ndarray:
    """Logits [T, V] float32 of one forward pass over token ids `ids` (at most n_ctx), with
    `editor` applied (None: the model's own run). Raises ValueError for too many tokens."""
    with torch.inference_mode():
        return model(_ids_tensor(model, ids), editor=editor)[0].float().cpu().numpy()


def ablated_logits(model: GPT, ids: Sequence[int], ablation: Ablation) -> np.ndarray:
    """Logits [T, V] float32 of the run with `ablation` applied. Raises ValueError for a head or
    MLP the model does not have."""
    ablation.check(model.config)
    return run_logits(model, ids, ablation.editor())


def ablated_trace(
    model: GPT,
    tokenizer: Tokenizer,
    text_or_ids: str | list[int],
    ablation: Ablation,
    *,
    model_name: str = "",
) -> Trace:
    """`run_with_trace` of the run with `ablation` applied: every activation of the ablated run
    (the ablated heads' z read zero, or their mean)."""
    ablation.check(model.config)
    return run_with_trace(
        model, tokenizer, text_or_ids, model_name=model_name, editor=ablation.editor()
    )


def _valid_logits(logits: np.ndarray, n_valid: int, gap_ids: Sequence[int]) -> np.ndarray:
    """float64 logits with the ids that name no token (padding >= n_valid, gaps) at -inf."""
    x = np.array(logits, dtype=np.float64)
    x[..., int(n_valid) :] = -np.inf
    if len(gap_ids):
        x[..., list(gap_ids)] = -np.inf
    return x


def log_probs(logits: np.ndarray, n_valid: int | None = None, gap_ids: Sequence[int] = ()):
    """Log-softmax (float64, natural log) of logits [..., V] over the ids that name a token
    (padding ids >= `n_valid` and `gap_ids` get -inf)."""
    x = _valid_logits(logits, logits.shape[-1] if n_valid is None else n_valid, gap_ids)
    top = x.max(axis=-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


def loss_per_position(
    logits: np.ndarray,
    ids: Sequence[int],
    n_valid: int | None = None,
    gap_ids: Sequence[int] = (),
) -> np.ndarray:
    """Cross-entropy in nats [T - 1] (float64): -log p(ids[t + 1] | tokens <= t) at each position
    t that has a next token, from logits [T, V]. Empty for a one-token text."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2:
        return np.zeros(0)
    lp = log_probs(logits[:-1], n_valid, gap_ids)
    return -lp[np.arange(len(ids) - 1), ids[1:]]


@dataclass(frozen=True)
class KnockOut:
    """A text run with and without an ablation.

    ablation: what was knocked out.
    token_ids: int64 [T].
    logits_before, logits_after: float32 [T, V] (the model's own run; the ablated run).
    loss_before, loss_after: float64 [T - 1], nats: -log p of each real next token.
    """

    ablation: Ablation
    token_ids: np.ndarray
    logits_before: np.ndarray = field(repr=False)
    logits_after: np.ndarray = field(repr=False)
    loss_before: np.ndarray
    loss_after: np.ndarray


def knock_out(
    model: GPT,
    trace: Trace,
    ablation: Ablation,
) -> KnockOut:
    """Run `trace`'s tokens again with `ablation` applied and compare with the Trace's own
    logits (the unablated run). Losses leave out the padding and gap ids of the Trace's
    vocabulary. Raises ValueError for a head or MLP the model does not have."""
    ids = [int(i) for i in trace.token_ids]
    after = ablated_logits(model, ids, ablation)
    n_valid, gaps = trace.n_valid_ids, trace.gap_ids
    return KnockOut(
        ablation=ablation,
        token_ids=np.asarray(ids, dtype=np.int64),
        logits_before=np.asarray(trace.logits, dtype=np.float32),
        logits_after=after,
        loss_before=loss_per_position(trace.logits, ids, n_valid, gaps),
        loss_after=loss_per_position(after, ids, n_valid, gaps),
    )


# --- activation patching -------------------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    """One activation to copy from the clean run into the corrupted one.

    name: a canonical name of an editable site (`engine.model.EDITABLE_SITES`), e.g.
        "blocks.1.hook_resid_pre", "blocks.0.attn.hook_z", "blocks.1.hook_mlp_out".
    pos: the position to patch; None patches every position.
    head: for "attn.hook_z" only, the head to patch; None patches every head.
    """

    name: str
    pos: int | None = None
    head: int | None = None


def _check_patch(patch: Patch, config: GPTConfig, n_tokens: int) -> None:
    parsed = parse_name(patch.name, config.n_layer)
    if parsed is None or parsed[0].name not in EDITABLE_SITES:
        raise ValueError(
            f"{patch.name!r} is not a site that can be patched: use blocks.L.<site> with site "
            f"one of {', '.join(EDITABLE_SITES)}"
        )
    if patch.pos is not None and not 0 <= patch.pos < n_tokens:
        raise ValueError(f"position {patch.pos} is outside 0..{n_tokens - 1}")
    if patch.head is not None:
        if parsed[0].name != "attn.hook_z":
            raise ValueError("only attn.hook_z has heads to choose from")
        if not 0 <= patch.head < config.n_head:
            raise ValueError(f"head {patch.head} is outside 0..{config.n_head - 1}")


def record_activations(model: GPT, ids: Sequence[int], names: Iterable[str]) -> dict[str, Tensor]:
    """The activations `names` (canonical names) of the model's own run over `ids`, batch
    dimension removed, on the model's device: what a patch copies from the clean run."""
    wanted, out = set(names), {}

    def recorder(name: str, tensor: Tensor) -> None:
        if name in wanted:
            out[name] = tensor[0].clone()

    with torch.inference_mode():
        model(_ids_tensor(model, ids), recorder=recorder)
    missing = wanted - set(out)
    if missing:
        raise ValueError(f"no activation named {sorted(missing)[0]!r} in this model's run")
    return out


def patch_editor(rows: Sequence[Sequence[Patch]], clean: Mapping[str, Tensor]) -> Editor:
    """The editor that applies `rows[b]` (a list of patches) to batch row b, copying values from
    `clean` (name -> activation [T, ...], `record_activations`). A row with no patches is the
    corrupted run itself."""
    by_name: dict[str, list[tuple[int, Patch]]] = {}
    for b, patches in enumerate(rows):
        for patch in patches:
            by_name.setdefault(patch.name, []).append((b, patch))

    def edit(name: str, tensor: Tensor) -> Tensor:
        todo = by_name.get(name)
        if not todo:
            return tensor
        out, source = tensor.clone(), clean[name]
        for b, patch in todo:
            where = slice(None) if patch.pos is None else patch.pos
            if patch.head is None:
                out[b, where] = source[where]
            else:
                out[b, where, patch.head] = source[where, patch.head]
        return out

    return edit


def patched_logits(
    model: GPT,
    clean_ids: Sequence[int],
    corrupt_ids: Sequence[int],
    patches: Sequence[Patch],
) -> np.ndarray:
    """Logits [T, V] float32 of the corrupted run with every patch in `patches` copied from the
    clean run (no patches: the corrupted run). Raises ValueError when the two texts' token
    counts differ or a patch names no editable site."""
    _check_same_length(clean_ids, corrupt_ids)
    for patch in patches:
        _check_patch(patch, model.config, len(corrupt_ids))
    clean = record_activations(model, clean_ids, {p.name for p in patches})
    return run_logits(model, corrupt_ids, patch_editor([list(patches)], clean))


def _check_same_length(clean_ids: Sequence[int], corrupt_ids: Sequence[int]) -> None:
    if len(clean_ids) != len(corrupt_ids):
        raise ValueError(
            f"the clean text has {len(clean_ids)} tokens and the corrupted text "
            f"{len(corrupt_ids)}: patching copies position t into position t, so both need "
            "the same number of tokens"
        )


def logit_diff(logits: np.ndarray, answer: int, wrong: int) -> np.ndarray:
    """logit[answer] - logit[wrong] (float64) of logits [..., V]: the metric of Wang et al. 2022."""
    x = np.asarray(logits, dtype=np.float64)
    return x[..., answer] - x[..., wrong]


@dataclass(frozen=True)
class PatchingResult:
    """Activation patching of a clean and a corrupted text (Meng et al. 2022; Wang et al. 2022).

    clean_ids, corrupt_ids: int64 [T].
    pos: the position whose logits are measured (the last by default).
    answer, wrong: the two token ids of the logit difference logit(answer) - logit(wrong).
    clean_diff, corrupt_diff: that difference in the clean and the corrupted run.
    resid_diff: [L, T] the difference after patching `blocks.l.hook_resid_pre` at position t
        (row l: the residual stream entering block l; positions after `pos` cannot change it).
    head_diff: [L, H] after patching head h's z (`blocks.l.attn.hook_z`) at every position.
    mlp_diff: [L] after patching `blocks.l.hook_mlp_out` at every position.
    """

    clean_ids: np.ndarray
    corrupt_ids: np.ndarray
    pos: int
    answer: int
    wrong: int
    clean_diff: float
    corrupt_diff: float
    resid_diff: np.ndarray
    head_diff: np.ndarray
    mlp_diff: np.ndarray

    @property
    def normalisable(self) -> bool:
        """Whether the clean and corrupted differences differ (else nothing can be restored)."""
        return abs(self.clean_diff - self.corrupt_diff) > 1e-6

    def restored(self, diff: np.ndarray) -> np.ndarray:
        """(diff - corrupted) / (clean - corrupted), float64: the fraction of the clean-vs-
        corrupted logit difference a patch restores (1: all of it). Raises ValueError when the
        clean and corrupted runs give the same difference."""
        if not self.normalisable:
            raise ValueError(
                "the clean and the corrupted text give the same logit difference: there is "
                "nothing for a patch to restore"
            )
        return (np.asarray(diff, dtype=np.float64) - self.corrupt_diff) / (
            self.clean_diff - self.corrupt_diff
        )


def default_answers(
    clean_logits: np.ndarray,
    corrupt_logits: np.ndarray,
    n_valid: int,
    gap_ids: Sequence[int] = (),
) -> tuple[int, int]:
    """(answer, wrong) when none are chosen: the clean run's top token, and the corrupted run's
    top token (its second when that is the same token). Logits [V] at the measured position;
    ids that name no token (>= n_valid: padding; `gap_ids`) are never chosen."""
    clean = _valid_logits(clean_logits, n_valid, gap_ids)
    corrupt = _valid_logits(corrupt_logits, n_valid, gap_ids)
    answer = int(np.argmax(clean))
    order = np.argsort(-corrupt, kind="stable")
    wrong = int(order[0]) if int(order[0]) != answer else int(order[1])
    return answer, wrong


def _batched_metric(
    model: GPT,
    corrupt_ids: Sequence[int],
    clean: Mapping[str, Tensor],
    runs: Sequence[Sequence[Patch]],
    pos: int,
    answer: int,
    wrong: int,
    progress: Progress,
    done: int,
    total: int,
) -> np.ndarray:
    """The logit difference at `pos` of one corrupted run per entry of `runs` (its patches), in
    batches of at most about 64 MB of logits; only tokens up to `pos` are run (the logits there
    cannot depend on later ones)."""
    ids = _ids_tensor(model, corrupt_ids[: pos + 1])
    per_run = (pos + 1) * model.config.vocab_size * 4
    batch = max(1, min(64, (64 * 2**20) // per_run))
    out = np.empty(len(runs))
    with torch.inference_mode():
        for s in range(0, len(runs), batch):
            chunk = runs[s : s + batch]
            logits = model(ids.expand(len(chunk), -1), editor=patch_editor(chunk, clean))
            out[s : s + len(chunk)] = logit_diff(
                logits[:, pos].double().cpu().numpy(), answer, wrong
            )
            progress(done + s + len(chunk), total)
    return out


def activation_patching(
    model: GPT,
    clean_ids: Sequence[int],
    corrupt_ids: Sequence[int],
    *,
    answer: int | None = None,
    wrong: int | None = None,
    pos: int | None = None,
    n_valid: int | None = None,
    gap_ids: Sequence[int] = (),
    progress: Progress = _no_progress,
) -> PatchingResult:
    """Patch the clean run into the corrupted one at every layer and position of the residual
    stream (`hook_resid_pre`), at every head's z and every MLP's output, one site per run, and
    measure the logit difference logit(answer) - logit(wrong) at `pos` (default the last
    position). `answer`/`wrong` default to `default_answers`; `n_valid` (default V) and
    `gap_ids` say which ids name no token (never a default). `progress(done, total)` is
    called after each batch of runs.

    Raises ValueError for texts of different token lengths, an empty text, a position outside
    the text, or token ids outside the vocabulary."""
    cfg = model.config
    _check_same_length(clean_ids, corrupt_ids)
    T = len(clean_ids)
    if T == 0:
        raise ValueError("the texts are empty: there is nothing to patch")
    pos = T - 1 if pos is None else pos
    if not 0 <= pos < T:
        raise ValueError(f"position {pos} is outside 0..{T - 1}")
    n_valid = cfg.vocab_size if n_valid is None else n_valid
    clean_logits = run_logits(model, clean_ids)[pos]
    corrupt_logits = run_logits(model, corrupt_ids)[pos]
    a, w = default_answers(clean_logits, corrupt_logits, n_valid, gap_ids)
    answer = a if answer is None else int(answer)
    wrong = w if wrong is None else int(wrong)
    for token in (answer, wrong):
        if not 0 <= token < n_valid:
            raise ValueError(f"token id {token} is outside the vocabulary (0..{n_valid - 1})")
    L, H = cfg.n_layer, cfg.n_head
    resid = [
        [Patch(act_name("hook_resid_pre", layer), t)] for layer in range(L) for t in range(pos + 1)
    ]
    heads = [
        [Patch(act_name("attn.hook_z", layer), None, h)] for layer in range(L) for h in range(H)
    ]
    mlps = [[Patch(act_name("hook_mlp_out", layer))] for layer in range(L)]
    names = {p[0].name for p in resid + heads + mlps}
    clean = record_activations(model, clean_ids, names)
    total = len(resid) + len(heads) + len(mlps)
    progress(0, total)
    runs = resid + heads + mlps
    diffs = _batched_metric(model, corrupt_ids, clean, runs, pos, answer, wrong, progress, 0, total)
    corrupt_diff = float(logit_diff(corrupt_logits, answer, wrong))
    resid_diff = np.full((L, T), corrupt_diff)  # positions after pos cannot change the metric
    resid_diff[:, : pos + 1] = diffs[: len(resid)].reshape(L, pos + 1)
    return PatchingResult(
        clean_ids=np.asarray(clean_ids, dtype=np.int64),
        corrupt_ids=np.asarray(corrupt_ids, dtype=np.int64),
        pos=pos,
        answer=answer,
        wrong=wrong,
        clean_diff=float(logit_diff(clean_logits, answer, wrong)),
        corrupt_diff=corrupt_diff,
        resid_diff=resid_diff,
        head_diff=diffs[len(resid) : len(resid) + len(heads)].reshape(L, H),
        mlp_diff=diffs[len(resid) + len(heads) :],
    )


def encode_pair(
    tokenizer: Tokenizer, clean: str | list[int], corrupt: str | list[int], n_ctx: int
) -> tuple[list[int], list[int]]:
    """Token ids of a clean and a corrupted text (each cut to the context), checked to have the
    same length. Raises ValueError for an empty text or different lengths (the message gives
    both counts)."""
    clean_ids, _ = prepare_ids(tokenizer, clean, n_ctx)
    corrupt_ids, _ = prepare_ids(tokenizer, corrupt, n_ctx)
    _check_same_length(clean_ids, corrupt_ids)
    return clean_ids, corrupt_ids


# --- direct logit attribution --------------------------------------------------------------


def component_names(config: GPTConfig) -> tuple[str, ...]:
    """The components of the direct logit attribution, in order: "embed", "pos_embed", then for
    each layer l its heads "L{l}H{h}", its attention output bias "L{l}_attn_bias" and its MLP
    output "L{l}_mlp_out" (including the MLP's output bias), and last "ln_final_bias" (beta of
    ln_f read by the unembedding)."""
    names = ["embed", "pos_embed"]
    for layer in range(config.n_layer):
        names += [f"L{layer}H{h}" for h in range(config.n_head)]
        names += [f"L{layer}_attn_bias", f"L{layer}_mlp_out"]
    return (*names, "ln_final_bias")


@dataclass(frozen=True)
class Attribution:
    """The direct logit attribution of one token's logit at one position (Elhage et al. 2021).

    pos, token: where and for which token id.
    names: `component_names(config)` (C of them).
    contributions: float64 [C]: each component's term; they sum to the logit (float rounding).
    logit: the model's own logit of `token` at `pos` (the Trace's).
    promoted, suppressed: int64 [C, k]: the tokens each component pushes up most / down most
        (its direct effect on every token's logit, through ln_f with the scale held fixed).
    promoted_by, suppressed_by: float32 [C, k]: those effects, in logits.
    n_layer, n_head: the model's shape (for `head_grid`).
    """

    pos: int
    token: int
    names: tuple[str, ...]
    contributions: np.ndarray
    logit: float
    promoted: np.ndarray
    promoted_by: np.ndarray
    suppressed: np.ndarray
    suppressed_by: np.ndarray
    n_layer: int
    n_head: int

    def index(self, name: str) -> int:
        """The row of component `name`."""
        return self.names.index(name)

    @property
    def head_grid(self) -> np.ndarray:
        """[L, H] the heads' contributions (row l, column h: head l.h)."""
        rows = [
            [self.contributions[self.index(f"L{layer}H{h}")] for h in range(self.n_head)]
            for layer in range(self.n_layer)
        ]
        return np.array(rows, dtype=np.float64)


def _component_vectors(trace: Trace, model: GPT, pos: int) -> np.ndarray:
    """[C, d] float64: what each component of `component_names` wrote into the final residual
    at `pos` (ln_final_bias: zeros here; its term is added after ln_f). One streaming pass over
    the layers: on a lazy Trace each block's two halves are computed once and dropped
    (`Trace.get_layer(..., keep=False)`), so the pass evicts nothing a page keeps."""
    cfg = trace.config
    H, dh = cfg.n_head, cfg.d_head
    rows = [trace["hook_embed"][pos], trace["hook_pos_embed"][pos]]
    for layer in range(cfg.n_layer):
        c_proj = model.transformer.h[layer].attn.c_proj
        w_o = c_proj.weight.detach().double().cpu().numpy()  # [d (heads concatenated), d]
        sites = trace.get_layer(layer, ("attn.hook_z", "hook_mlp_out"), keep=False)
        z = np.asarray(sites["attn.hook_z"][pos], dtype=np.float64)  # [H, dh]
        for h in range(H):
            rows.append(z[h] @ w_o[h * dh : (h + 1) * dh])
        rows.append(c_proj.bias.detach().double().cpu().numpy())
        rows.append(sites["hook_mlp_out"][pos])
    rows.append(np.zeros(cfg.d_model))
    return np.array(rows, dtype=np.float64)


def direct_logit_attribution(
    trace: Trace, model: GPT, pos: int | None = None, token: int | None = None, k: int = 5
) -> Attribution:
    """Split the logit of `token` at position `pos` (defaults: the last position, the model's top
    token there) into one term per component (`component_names`), Elhage et al. 2021: each
    component's vector c is centred (ln_f subtracts the mean over features, a linear map),
    divided by the run's ln_f scale at `pos` (held fixed), multiplied by gamma and read by the
    unembedding row of `token`; ln_f's beta gives the last term. The terms sum to the logit
    up to float rounding (tests: 1e-4). Also each component's `k` most promoted and suppressed
    tokens (ids that name a token only). Needs a Trace of an evaluation pass of `model` (z,
    mlp_out, embeddings, ln_final.hook_scale). Raises ValueError for a position or token out of
    range or a model that differs in shape from the Trace's."""
    cfg = trace.config
    if (cfg.d_model, cfg.vocab_size, cfg.n_layer, cfg.n_head) != (
        model.config.d_model,
        model.config.vocab_size,
        model.config.n_layer,
        model.config.n_head,
    ):
        raise ValueError("this Trace comes from a model of another shape: use the one that made it")
    T = trace.n_tokens
    pos = T - 1 if pos is None else int(pos)
    if not 0 <= pos < T:
        raise ValueError(f"position {pos} is outside 0..{T - 1}")
    n_valid = trace.n_valid_ids or cfg.vocab_size
    if token is None:
        token = int(np.argmax(_valid_logits(trace.logits[pos], n_valid, trace.gap_ids)))
    token = int(token)
    if not 0 <= token < n_valid:
        raise ValueError(f"token id {token} is outside the vocabulary (0..{n_valid - 1})")
    vectors = _component_vectors(trace, model, pos)  # [C, d]
    scale = float(trace["ln_final.hook_scale"][pos, 0])
    gamma, beta = (t.double().cpu().numpy() for t in model.layer_norm_weights("ln_final"))
    normed = (vectors - vectors.mean(axis=1, keepdims=True)) / scale * gamma  # [C, d]
    w_u = model.lm_head_weight.detach()
    contributions = normed @ w_u[token].double().cpu().numpy()
    contributions[-1] = float(beta @ w_u[token].double().cpu().numpy())
    # every token's direct effect, float32 [C, V]: the promoted and suppressed tokens
    normed[-1] = beta
    effects = torch.from_numpy(normed.astype(np.float32)).to(w_u.device) @ w_u.float().T
    effects = effects[:, :n_valid].cpu()
    if trace.gap_ids:
        effects[:, list(trace.gap_ids)] = float("nan")
    k = min(k, n_valid - len(trace.gap_ids))
    up = torch.nan_to_num(effects, nan=-float("inf")).topk(k, dim=-1)
    down = torch.nan_to_num(-effects, nan=-float("inf")).topk(k, dim=-1)
    return Attribution(
        pos=pos,
        token=token,
        names=component_names(cfg),
        contributions=contributions,
        logit=float(trace.logits[pos, token]),
        promoted=up.indices.numpy().astype(np.int64),
        promoted_by=up.values.numpy(),
        suppressed=down.indices.numpy().astype(np.int64),
        suppressed_by=-down.values.numpy(),
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
    )


# --- the logit lens after every sub-layer --------------------------------------------------


def sublayer_lens(trace: Trace, model: GPT, k: int = 10) -> LogitLens:
    """The logit lens (nostalgebraist 2020) read after the embeddings, then after each block's
    attention (`hook_resid_mid`) and after its MLP (`hook_resid_post`): 2 L + 1 rows, labelled
    "embed", "block 0 attn", "block 0 mlp", ... (`LogitLens.layer_labels`). Same reading as
    `engine.lens.logit_lens.logit_lens` (ln_f with each residual's own statistics)."""
    return logit_lens(trace, model, k=k, sublayers=True)


__all__ = [
    "MODES",
    "Ablation",
    "Attribution",
    "KnockOut",
    "Patch",
    "PatchingResult",
    "ablated_logits",
    "ablated_trace",
    "activation_patching",
    "component_names",
    "default_answers",
    "direct_logit_attribution",
    "encode_pair",
    "format_heads",
    "knock_out",
    "log_probs",
    "logit_diff",
    "loss_per_position",
    "parse_heads",
    "patch_editor",
    "patched_logits",
    "record_activations",
    "run_logits",
    "sublayer_lens",
]
