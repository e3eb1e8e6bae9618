"""A plain training loop that reports through callbacks.

Reproducible and resumable: the batch of step s is drawn from `numpy.random.default_rng([seed,
s])` and its dropout from `torch.manual_seed(seed + s)`, so a run resumed from a checkpoint at
step s continues exactly as the uninterrupted run would. Checkpoints hold no pickle: weights and
optimizer moments are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engine.card import ModelCard
from engine.checkpoints import load_directory, random_model, save_checkpoint
from engine.config import GPTConfig, TrainConfig
from engine.model import GPT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainEvent:
    """What a callback receives. `kind` is "step", "eval", "checkpoint" or "done".

    `model`: on "step" events, the model being trained (in training mode, just after the
    optimizer step), for callbacks that look inside it while it learns (the app's live
    training); such a callback must not change it: run it under `torch.no_grad()` in eval mode
    and put it back in training mode. None on the other events."""

    kind: str
    step: int
    max_steps: int
    loss: float = float("nan")
    lr: float = 0.0
    tokens_per_s: float = 0.0
    elapsed_s: float = 0.0
    val_loss: float = float("nan")
    model: GPT | None = field(default=None, repr=False, compare=False)


Callback = Callable[[TrainEvent], None]


@dataclass
class TrainState:
    """Where a run is: optimizer steps done, tokens seen, seconds inside steps, and the
    validation loss at each evaluation (`history`: step, val_loss, tokens)."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)  # eval points


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr` at `max_steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, progress)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


TrainData = np.ndarray | tuple[np.ndarray, ...]


def _parts(data: TrainData) -> tuple[np.ndarray, ...]:
    return data if isinstance(data, tuple) else (data,)


def get_batch(
    data: TrainData,
    cfg: TrainConfig,
    step: int,
    vocab_size: int,
    eot_id: int,
    copy_ids: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets [batch, seq_len] for `step`, the same every time it is asked for.

    `data` is one token array, or a tuple of them (one per language): each text row then comes
    from one of them, drawn with equal probability, so the languages are balanced whatever
    their sizes.

    A share `cfg.synthetic_share` of the rows is a copy task: random tokens, then the same tokens
    again. Only the repeated half is scored (the first half cannot be predicted), so the only way
    to lower that loss is to look back and copy: what an induction head does. The copied tokens
    are drawn uniformly from `copy_ids` (default: every ordinary id below `eot_id`). A further
    share `cfg.natural_copy_share` of the rows are natural-text copy rows (`_natural_copy_row`).
    """
    rng = np.random.default_rng([cfg.seed, step])
    B, T = cfg.batch_size, cfg.seq_len
    parts = _parts(data)
    which = rng.integers(0, len(parts), size=B) if len(parts) > 1 else np.zeros(B, np.int64)
    rows = np.empty((B, T + 1), dtype=np.int64)
    for r in range(B):
        part = parts[which[r]]
        s = int(rng.integers(0, len(part) - T - 1))
        rows[r] = part[s : s + T + 1]
    targets = rows[:, 1:].copy()
    share = 1.0 if step < cfg.copy_first_steps else cfg.synthetic_share
    n_synth = round(share * B)
    for r in range(n_synth):
        rows[r], targets[r] = _copy_row(rng, T, eot_id, cfg.synthetic_segment, copy_ids)
    n_natural = 0 if step < cfg.copy_first_steps else round(cfg.natural_copy_share * B)
    for r in range(n_synth, min(B, n_synth + n_natural)):
        rows[r], targets[r] = _natural_copy_row(rng, parts[which[r]], T, cfg.natural_copy_segment)
    return torch.from_numpy(rows[:, :-1]), torch.from_numpy(targets)


def _natural_copy_row(
    rng: np.random.Generator, data: np.ndarray, T: int, segment: int
) -> tuple[np.ndarray, np.ndarray]:
    """One natural-text copy row of T + 1 tokens and its T targets: passages of the training
    text, of lengths drawn from [max(4, segment // 4), segment], each followed by itself again,
    until the row is full. Every target is scored: the first copy as ordinary text, the second
    as a copy (what the app's "repeated line" presets show)."""
    pieces: list[np.ndarray] = []
    total = 0
    while total < T + 1:
        n = int(rng.integers(max(4, segment // 4), segment + 1))
        s = int(rng.integers(0, len(data) - n))
        passage = data[s : s + n].astype(np.int64)
        pieces += [passage, passage]
        total += 2 * n
    row = np.concatenate(pieces)[: T + 1]
    return row, row[1:].copy()


def copy_vocabulary(train_data: TrainData, eot_id: int, min_count: int) -> np.ndarray | None:
    """Ordinary ids seen at least `min_count` times in `train_data` (None if min_count is 0)."""
    if min_count <= 0:
        return None
    ids, counts = np.unique(np.concatenate(_parts(train_data)), return_counts=True)
    keep = ids[(counts >= min_count) & (ids < eot_id)].astype(np.int64)
    if len(keep) < 2:
        raise ValueError(f"fewer than 2 ids occur {min_count} times in the training data")
    return keep


def _copy_row(
    rng: np.random.Generator,
    T: int,
    eot_id: int,
    segment: int,
    copy_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One copy-task row of T + 1 tokens and its T targets (-1 = not scored).

    segment == 0: one run of random tokens, then the same run again (and again, to fill the
    row). segment > 0: pairs of runs whose length is drawn from [max(4, segment // 4), segment],
    each run followed by its copy, until the row is full: shorter look-backs, more of them."""

    def draw(n: int) -> np.ndarray:
        if copy_ids is None:
            return rng.integers(0, eot_id, size=n)
        return copy_ids[rng.integers(0, len(copy_ids), size=n)]

    if segment <= 0:
        half = (T + 1) // 2
        seq = draw(half)
        row = np.concatenate([seq, seq, seq])[: T + 1]
        targets = row[1:].copy()
        targets[:half] = -1  # ignore the unpredictable first copy
        return row, targets
    row = np.empty(0, dtype=np.int64)
    scored = np.empty(0, dtype=bool)
    while len(row) < T + 1:
        n = int(rng.integers(max(4, segment // 4), segment + 1))
        seq = draw(n)
        row = np.concatenate([row, seq, seq])
        # Token k of the copy is predictable from token k - 1 of the copy (k >= 1).
        scored = np.concatenate([scored, np.zeros(n + 1, bool), np.ones(n - 1, bool)])
    row, scored = row[: T + 1], scored[: T + 1]
    targets = row[1:].copy()
    targets[~scored[1:]] = -1
    return row, targets


def loss_of(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of the targets `y` [B, T] given inputs `x` [B, T]; targets
    of -1 are not scored (the unscored first copy of a copy-task row)."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)


@torch.no_grad()
def estimate_loss(model: GPT, data: np.ndarray, seq_len: int, max_windows: int = 0) -> float:
    """Mean next-token loss over consecutive non-overlapping windows of `data` (all of them, or
    the first `max_windows`), in evaluation mode."""
    was_training = model.training
    model.eval()
    n = (len(data) - 1) // seq_len
    if max_windows:
        n = min(n, max_windows)
    total, count = 0.0, 0
    for start in range(0, n, 32):
        idx = np.arange(start, min(n, start + 32)) * seq_len
        x = torch.from_numpy(np.stack([data[i : i + seq_len] for i in idx]).astype(np.int64))
        y = torch.from_numpy(
            np.stack([data[i + 1 : i + seq_len + 1] for i in idx]).astype(np.int64)
        )
        x, y = x.to(model.device), y.to(model.device)
        logits = model(x)
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
        ).item()
        count += y.numel()
    model.train(was_training)
    return total / max(1, count)


def _decayed(name: str, p: torch.Tensor, cfg: TrainConfig) -> bool:
    if p.dim() < 2:
        return False
    return cfg.decay_embeddings or not name.endswith(("wte.weight", "wpe.weight"))


def make_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW (betas 0.9, 0.95) with `cfg.weight_decay` on matrices only (and not on the
    embeddings when `cfg.decay_embeddings` is False)."""
    decay = [p for n, p in model.named_parameters() if _decayed(n, p, cfg)]
    no_decay = [p for n, p in model.named_parameters() if not _decayed(n, p, cfg)]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def _save_state(
    out: Path,
    model: GPT,
    opt: torch.optim.AdamW,
    state: TrainState,
    cfg: TrainConfig,
    n_ranks: int,
    card: ModelCard | None,
) -> None:
    save_checkpoint(model, out, n_ranks, card)
    names = {id(p): n for n, p in model.named_parameters()}
    tensors: dict[str, torch.Tensor] = {}
    steps: dict[str, float] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            s = opt.state.get(p)
            if s:
                tensors[names[id(p)] + ".exp_avg"] = s["exp_avg"].contiguous().cpu()
                tensors[names[id(p)] + ".exp_avg_sq"] = s["exp_avg_sq"].contiguous().cpu()
                steps[names[id(p)]] = float(s["step"])
    # Each file is written beside its final name and then moved over it (never half-written),
    # the state file last. A run killed between the moves can leave weights one save newer
    # than the state and the moments: stop a run between saves (its log prints each one).
    save_file(tensors, str(out / "optimizer.safetensors.tmp"))
    (out / "optimizer.safetensors.tmp").replace(out / "optimizer.safetensors")
    tmp = out / "train_state.json.tmp"
    tmp.write_text(
        json.dumps(
            {"state": asdict(state), "train_config": asdict(cfg), "adam_steps": steps}, indent=1
        )
    )
    tmp.replace(out / "train_state.json")


def _load_state(out: Path, model: GPT, opt: torch.optim.AdamW) -> TrainState:
    meta = json.loads((out / "train_state.json").read_text())
    moments = load_file(str(out / "optimizer.safetensors"))
    for name, p in model.named_parameters():
        if name in meta["adam_steps"]:
            opt.state[p] = {
                "step": torch.tensor(meta["adam_steps"][name]),
                "exp_avg": moments[name + ".exp_avg"].to(p.device),
                "exp_avg_sq": moments[name + ".exp_avg_sq"].to(p.device),
            }
    return TrainState(**meta["state"])


def _start(
    model_config: GPTConfig,
    cfg: TrainConfig,
    out: Path | None,
    resume: bool,
    device: torch.device | None = None,
) -> tuple[GPT, torch.optim.AdamW, TrainState]:
    """The model (in training mode, on `device`), its optimizer and the state: resumed from
    `out` when it holds a run's checkpoint and `resume` is set, else fresh from `cfg.seed`
    (initialised on the CPU, so every device starts from the same weights)."""
    device = device or torch.device("cpu")
    if resume and out is not None and (out / "train_state.json").is_file():
        model = load_directory(out).model.to(device)
        if model.config != model_config:
            raise ValueError(
                f"{out} holds a checkpoint of another shape ({model.config}); "
                "pass restart (--restart) or another output directory"
            )
        for p in model.parameters():
            p.requires_grad_(True)
        opt = make_optimizer(model, cfg)
        state = _load_state(out, model, opt)
        log.info("resuming from step %d", state.step)
    else:
        model = random_model(
            model_config, seed=cfg.seed, sinusoidal_positions=cfg.position_init == "sinusoidal"
        ).to(device)
        for p in model.parameters():
            p.requires_grad_(True)
        opt = make_optimizer(model, cfg)
        state = TrainState()
    model.train()
    return model, opt, state


def train(
    model_config: GPTConfig,
    cfg: TrainConfig,
    train_data: TrainData,
    val_data: np.ndarray | dict[str, np.ndarray],
    out_dir: str | Path | None,
    n_ranks: int,
    eot_id: int,
    callbacks: tuple[Callback, ...] = (),
    resume: bool = True,
    card: ModelCard | None = None,
    stop_at: int = 0,
    device: torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[GPT, TrainState]:
    """Train from scratch, or resume from `out_dir` if it holds a checkpoint of this run.
    Saves `out_dir` (with `card`, the run's facts) at every evaluation and at the end; with
    `cfg.snapshot_every`, also weights-only snapshots (`snapshots/step_NNNNNN/`). `out_dir`
    None: nothing is read or written (a fresh run kept in memory, as the app's live training).

    `should_stop`: asked before every step; when it returns True the run ends there (the
    model in eval mode, a "done" event, no evaluation), so a caller in another thread can stop
    it within one step.

    `train_data`: one token array or one per language (see `get_batch`). `val_data`: one array,
    or language -> array; then each evaluation records `val_loss_<language>` too and `val_loss`
    is their mean. `device`: where the model trains (default the CPU); batches are drawn on the
    CPU from the seed and the step whatever the device, and checkpoints are written from CPU
    copies, so a run can move between devices when it resumes. Raises ValueError when seq_len
    exceeds the context or `out_dir` holds another shape."""
    out = Path(out_dir) if out_dir is not None else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.seq_len > model_config.n_ctx:
        raise ValueError(f"seq_len {cfg.seq_len} exceeds the model's context {model_config.n_ctx}")
    model, opt, state = _start(model_config, cfg, out, resume and out is not None, device)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    copy_ids = copy_vocabulary(train_data, eot_id, cfg.synthetic_min_count)

    def emit(event: TrainEvent) -> None:
        for cb in callbacks:
            cb(event)

    def evaluate_and_save() -> None:
        windows = cfg.eval_batches * 32
        point: dict[str, float] = {"step": state.step, "tokens": state.tokens_seen}
        if isinstance(val_data, dict):
            for lang, ids in val_data.items():
                point[f"val_loss_{lang}"] = estimate_loss(model, ids, cfg.seq_len, windows)
            val = float(np.mean([point[f"val_loss_{lang}"] for lang in val_data]))
        else:
            val = estimate_loss(model, val_data, cfg.seq_len, max_windows=windows)
        point["val_loss"] = val
        state.history.append(point)
        emit(TrainEvent("eval", state.step, cfg.max_steps, val_loss=val, elapsed_s=state.elapsed_s))
        if out is None:
            return
        _save_state(out, model, opt, state, cfg, n_ranks, card)
        emit(TrainEvent("checkpoint", state.step, cfg.max_steps, elapsed_s=state.elapsed_s))

    # stop_at > 0 pauses the run at that step (checkpoint saved); the schedule still follows
    # max_steps, so a later call without stop_at continues exactly where this one paused.
    last = min(cfg.max_steps, stop_at) if stop_at > 0 else cfg.max_steps
    while state.step < last:
        if should_stop is not None and should_stop():
            break
        t0 = time.perf_counter()
        lr = get_lr(state.step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, cfg, state.step, model_config.vocab_size, eot_id, copy_ids)
        x, y = x.to(model.device), y.to(model.device)
        torch.manual_seed(cfg.seed + state.step)  # dropout masks of this step
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        dt = time.perf_counter() - t0
        state.step += 1
        state.tokens_seen += tokens_per_step
        state.elapsed_s += dt
        emit(
            TrainEvent(
                "step",
                state.step,
                cfg.max_steps,
                loss=loss.item(),
                lr=lr,
                tokens_per_s=tokens_per_step / dt,
                elapsed_s=state.elapsed_s,
                model=model,
            )
        )
        if cfg.snapshot_every and out is not None and state.step % cfg.snapshot_every == 0:
            save_checkpoint(model, out / "snapshots" / f"step_{state.step:06d}", n_ranks)
        if state.step % cfg.eval_every == 0 or state.step in (cfg.max_steps, last):
            evaluate_and_save()
    model.eval()
    emit(TrainEvent("done", state.step, cfg.max_steps, elapsed_s=state.elapsed_s))
    return model, state
