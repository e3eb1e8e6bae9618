"""Live training: a tiny GPT trained in a background thread while a class watches its loss and
its heads' attention (issue 18, item 3).

The run uses the engine's own loop (`engine.training.train.train`, with `out_dir=None`: nothing
is written; its `should_stop` hook stops it within one step; its "step" events carry the model,
which the run looks into every few dozen steps). The data is the bundled Shakespeare corpus
(`assets/corpus/`, the first `LiveConfig.corpus_chars` characters of the training works,
cl100k_base cut to 4,096 ranks) mixed with the copy task of `get_batch`: a share of the rows is
random tokens followed by the same tokens again, and only the repeat is scored. A model can
lower that part of the loss only by looking back at the first copy and copying the token that
followed the current one there, the attention pattern of an induction head (Olsson et al. 2022,
"In-context Learning and Induction Heads"). The loss sits on a plateau (the model only knows
which tokens are common), then drops within a few dozen steps once heads attend 31 tokens back.
Every repeat here starts exactly 32 tokens back (`seq_len` 64), so heads of layer 0 learn it by
position; a content-based induction head (composing with a previous-token head) did not form
within two minutes in any setting measured (README "Live training").

Measured on this project's machine (2 shared CPU cores, torch at 1 thread, load average 3 to 5
from other work): 1,000 steps in 82 to 119 s; the held-out copy loss sits near 5.8 nats until
about step 300 and is below 0.5 by step 575 (the run is seeded: the same numbers every time).

Threads: the run calls no `torch.set_num_threads` (`TrainConfig.threads` is 0): it uses the
process's setting, which the app sets once from `INSIDE_GPT_THREADS` (default 1), so it never
changes the thread count under the app's other sessions.

Concurrency: `REGISTRY.start(limit, ...)` refuses a run (`LiveTrainingRefusedError`) when `limit`
is 0 (live training disabled) or when `limit` runs are already training in this process. The
operator's limit comes from `INSIDE_GPT_LIVE_TRAINING` through `ui.settings`; the engine reads
no environment variable.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from engine.config import GPTConfig, TrainConfig
from engine.lens.heads import head_label, induction_targets
from engine.model import GPT
from engine.names import act_name
from engine.tokenizer import Tokenizer, cl100k_truncated
from engine.training.corpus import load_corpus, tokenize_works
from engine.training.probes import repeated_random_tokens
from engine.training.train import (
    TrainEvent,
    _copy_row,
    copy_vocabulary,
    estimate_loss,
    loss_of,
    train,
)

log = logging.getLogger(__name__)

N_RANKS = 4096  # cl100k_base cut to its first 4,096 ranks: the rank file bundled in assets/


# The tiny model: 2 layers of 4 heads, width 64, context 64 (366,400 parameters, 72% of
# them the 4,097 x 64 token embedding, tied to the unembedding).
LIVE_MODEL = GPTConfig(
    n_layer=2, n_head=4, d_model=64, n_ctx=64, vocab_size=N_RANKS + 1, dropout=0.0
)
# Chosen by measurement (README "Live training"): lr 5e-3 and three quarters copy-task rows
# drawn from the ids seen at least 100 times bring the drop near step 400-500.
LIVE_TRAIN = TrainConfig(
    max_steps=1000,
    batch_size=16,
    seq_len=64,
    lr=5e-3,
    min_lr=5e-4,
    warmup_steps=50,
    weight_decay=0.1,
    synthetic_share=0.75,
    synthetic_min_count=100,
    eval_every=1000,  # the loop's own evaluation only at the end: the run evaluates itself
    eval_batches=1,
    seed=0,
)


@dataclass(frozen=True)
class LiveConfig:
    """What a live run trains and how long.

    model: the tiny model's shape (vocabulary N_RANKS + 1 for `<|endoftext|>`).
    train: the training settings; `max_steps` is the step budget, `synthetic_share` the share
        of copy-task rows, `synthetic_min_count` keeps copied tokens to ids seen at least that
        often in the corpus slice (rarer ids keep near-identical embeddings, so copies of them
        cannot be told apart and the drop comes much later).
    max_seconds: wall-clock budget (s); the run ends at whichever budget comes first.
    eval_every: steps between evaluations (held-out copy rows and held-out text) and between
        attention snapshots of the probe.
    corpus_chars: characters of the training works used (the first ones).
    probe_half: the probe is `probe_half` random tokens then the same tokens again.
    owner_grace_s: a run whose owner is gone (`owner_alive` False) this long stops.
    """

    model: GPTConfig = LIVE_MODEL
    train: TrainConfig = LIVE_TRAIN
    max_seconds: float = 120.0
    eval_every: int = 25
    corpus_chars: int = 400_000
    probe_half: int = 32
    owner_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if self.train.seq_len > self.model.n_ctx or 2 * self.probe_half > self.model.n_ctx:
            raise ValueError("seq_len and the probe (2 x probe_half) must fit the context")
        if self.model.vocab_size != N_RANKS + 1:
            raise ValueError(f"the live model's vocabulary is {N_RANKS + 1} (cl100k_base[:4096])")
        if self.max_seconds <= 0 or self.eval_every < 1 or self.owner_grace_s < 0:
            raise ValueError("max_seconds must be > 0, eval_every >= 1, owner_grace_s >= 0")


LIVE_CONFIG = LiveConfig()

# The statuses of a run: training, or why it ended.
RUNNING, FINISHED, STOPPED, OWNER_GONE, FAILED = (
    "running",
    "finished",  # step or time budget reached
    "stopped",  # stop() was called
    "owner gone",  # the session that started it ended
    "failed",
)


@dataclass(frozen=True)
class LiveData:
    """Token ids of a live run: the training slice [N] and a held-out text slice [M] (int32),
    the ids the copy task draws from, the held-out copy batch (inputs and targets [B, T], -1 =
    not scored) and the probe (`probe_half` random tokens repeated: [2 probe_half])."""

    tokenizer: Tokenizer
    train_ids: np.ndarray
    val_ids: np.ndarray
    copy_ids: np.ndarray | None
    copy_x: torch.Tensor
    copy_y: torch.Tensor
    probe_ids: list[int]


@lru_cache(maxsize=4)
def live_data(config: LiveConfig = LIVE_CONFIG) -> LiveData:
    """The data of a run with `config` (cached per process: about 0.2 s to tokenize). The
    held-out copy rows and the probe come from seeds no training step uses."""
    tokenizer = cl100k_truncated(N_RANKS)
    train_texts, val_texts = load_corpus().split()
    train_ids = tokenize_works(["".join(train_texts)[: config.corpus_chars]], tokenizer)
    val_ids = tokenize_works(["".join(val_texts)[: config.corpus_chars // 8]], tokenizer)
    cfg = config.train
    copy_ids = copy_vocabulary(train_ids, tokenizer.eot_id, cfg.synthetic_min_count)
    rng = np.random.default_rng([cfg.seed, 2**31])  # train steps use [seed, step < 2**31]
    rows = [
        _copy_row(rng, cfg.seq_len, tokenizer.eot_id, cfg.synthetic_segment, copy_ids)
        for _ in range(cfg.batch_size)
    ]
    copy_x = torch.from_numpy(np.stack([r[:-1] for r, _ in rows]))
    copy_y = torch.from_numpy(np.stack([t for _, t in rows]))
    probe = repeated_random_tokens(cfg.seed + 1, config.probe_half, tokenizer.eot_id, copy_ids)
    return LiveData(tokenizer, train_ids, val_ids, copy_ids, copy_x, copy_y, probe)


@dataclass(frozen=True)
class HeadSnapshot:
    """Every head's attention on the probe at one step.

    step: optimizer steps done when it was taken.
    patterns: [n_layer, n_head, T, T] float32, query rows, key columns, rows sum to 1.
    induction: [n_layer, n_head] mean weight from each token of the second copy to the token
        after its occurrence in the first copy (`engine.lens.heads.induction_targets` with the
        probe's period: TransformerLens's induction score).
    previous: [n_layer, n_head] mean weight on the token just before (queries 1..T-1).
    labels: [n_layer][n_head] role names (`engine.lens.heads.head_label`).
    """

    step: int
    patterns: np.ndarray
    induction: np.ndarray
    previous: np.ndarray
    labels: tuple[tuple[str | None, ...], ...]


@dataclass(frozen=True)
class LiveProgress:
    """A copy of a run's record at one moment (safe to read in any thread).

    status: RUNNING, FINISHED, STOPPED, OWNER_GONE or FAILED; error: the failure's message.
    step / max_steps: optimizer steps done / the step budget; elapsed_s / max_seconds: wall
        seconds since the run started / the time budget.
    steps, loss: every step's number [S] and training loss [S] (nats; the mixed batch: text
        rows and copy rows).
    eval_steps: [E] steps of the evaluations; copy_loss [E]: loss (nats) on the held-out copy
        rows, repeat only (log 4097 = 8.3 for a uniform guess); text_loss [E]: next-token loss
        (nats) on held-out Shakespeare.
    heads: the latest attention snapshot (None before the first).
    probe_tokens: display strings of the probe's tokens [T].
    """

    status: str
    error: str
    step: int
    max_steps: int
    elapsed_s: float
    max_seconds: float
    steps: np.ndarray
    loss: np.ndarray
    eval_steps: np.ndarray
    copy_loss: np.ndarray
    text_loss: np.ndarray
    heads: HeadSnapshot | None
    probe_tokens: tuple[str, ...]

    @property
    def fraction(self) -> float:
        """How much of the budget is used, in [0, 1]: steps or seconds, whichever is ahead;
        1 once the run has ended."""
        if self.status != RUNNING:
            return 1.0
        return min(1.0, max(self.step / self.max_steps, self.elapsed_s / self.max_seconds))


def head_snapshot(model: GPT, probe_ids: list[int], step: int) -> HeadSnapshot:
    """Every head's pattern on `probe_ids` (a sequence repeated twice) and its scores. Runs
    the model in eval mode without gradients and puts it back in the mode it was in."""
    was_training = model.training
    model.eval()
    layers: dict[str, torch.Tensor] = {}

    def record(name: str, tensor: torch.Tensor) -> None:
        if name.endswith("attn.hook_pattern"):
            layers[name] = tensor[0].detach().float().cpu()

    try:
        with torch.no_grad():
            model(torch.tensor([probe_ids], device=model.device), recorder=record)
    finally:
        model.train(was_training)
    L = model.config.n_layer
    patterns = np.stack([layers[act_name("attn.hook_pattern", i)].numpy() for i in range(L)])
    T = patterns.shape[-1]
    q = np.arange(1, T)
    previous = patterns[:, :, q, q - 1].astype(np.float64).mean(-1)
    first = patterns[:, :, 1:, 0].astype(np.float64).mean(-1)
    self_ = patterns[:, :, q, q].astype(np.float64).mean(-1)
    rows, keys = (np.array(a) for a in zip(*induction_targets(probe_ids, T // 2), strict=True))
    induction = patterns[:, :, rows, keys].astype(np.float64).mean(-1)
    labels = tuple(
        tuple(
            head_label(previous[la, h], induction[la, h], first[la, h], self_[la, h])
            for h in range(patterns.shape[1])
        )
        for la in range(L)
    )
    return HeadSnapshot(step, patterns.astype(np.float32), induction, previous, labels)


class LiveTrainingRefusedError(RuntimeError):
    """A run was not started. `reason`: "disabled" (the limit is 0) or "busy" (`limit` runs
    are already training in this process)."""

    def __init__(self, reason: str, limit: int) -> None:
        self.reason, self.limit = reason, limit
        text = (
            "live training is disabled on this server"
            if reason == "disabled"
            else f"{limit} live training run(s) already training on this server"
        )
        super().__init__(text)


_NAMES = itertools.count(1)


class LiveRun:
    """One live training run in its own daemon thread; read `progress()` from any thread.

    `owner_alive`: asked about once a second; when it has answered False for
    `config.owner_grace_s` seconds the run stops (status OWNER_GONE). The app passes "is the
    browser session that started me still connected". `on_end`: called once in the run's
    thread when it ends (the registry forgets the run)."""

    def __init__(
        self,
        config: LiveConfig = LIVE_CONFIG,
        owner_alive: Callable[[], bool] | None = None,
        on_end: Callable[[LiveRun], None] | None = None,
    ) -> None:
        self.config = config
        self._owner_alive = owner_alive
        self._on_end = on_end
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status = RUNNING
        self._error = ""
        self._step = 0
        self._t0 = 0.0
        self._ended_at: float | None = None
        self._steps: list[int] = []
        self._loss: list[float] = []
        self._eval: list[tuple[int, float, float]] = []
        self._heads: HeadSnapshot | None = None
        self._probe_tokens: tuple[str, ...] = ()
        self._gone_since: float | None = None
        self._last_owner_check = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"live-training-{next(_NAMES)}", daemon=True
        )

    # -- control ---------------------------------------------------------------------------

    def start(self) -> LiveRun:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop; it ends before its next step (within one step's time)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the run's thread is still training."""
        return self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    # -- the record --------------------------------------------------------------------------

    def progress(self) -> LiveProgress:
        with self._lock:
            end = self._ended_at if self._ended_at is not None else time.monotonic()
            ev = np.array(self._eval, dtype=np.float64).reshape(-1, 3)
            return LiveProgress(
                status=self._status,
                error=self._error,
                step=self._step,
                max_steps=self.config.train.max_steps,
                elapsed_s=max(0.0, end - self._t0) if self._t0 else 0.0,
                max_seconds=self.config.max_seconds,
                steps=np.array(self._steps, dtype=np.int64),
                loss=np.array(self._loss, dtype=np.float64),
                eval_steps=ev[:, 0].astype(np.int64),
                copy_loss=ev[:, 1],
                text_loss=ev[:, 2],
                heads=self._heads,
                probe_tokens=self._probe_tokens,
            )

    # -- the thread --------------------------------------------------------------------------

    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        now = time.monotonic()
        if now - self._t0 >= self.config.max_seconds:
            return True
        if self._owner_alive is not None and now - self._last_owner_check >= 1.0:
            self._last_owner_check = now
            if self._owner_alive():
                self._gone_since = None
            elif self._gone_since is None:
                self._gone_since = now
        return self._gone_since is not None and now - self._gone_since >= self.config.owner_grace_s

    def _evaluate(self, model: GPT, data: LiveData, step: int) -> None:
        cfg = self.config.train
        model.eval()
        try:
            with torch.no_grad():
                copy = float(loss_of(model, data.copy_x, data.copy_y))
        finally:
            model.train()
        text = estimate_loss(model, data.val_ids, cfg.seq_len, max_windows=cfg.batch_size)
        heads = head_snapshot(model, data.probe_ids, step)
        with self._lock:
            self._eval.append((step, copy, text))
            self._heads = heads

    def _on_event(self, data: LiveData, event: TrainEvent) -> None:
        if event.kind != "step":
            return
        with self._lock:
            self._step = event.step
            self._steps.append(event.step)
            self._loss.append(event.loss)
        last = event.step == event.max_steps or self._should_stop()
        if event.model is not None and (event.step % self.config.eval_every == 0 or last):
            self._evaluate(event.model, data, event.step)

    def _run(self) -> None:
        try:
            data = live_data(self.config)
            with self._lock:
                self._probe_tokens = tuple(data.tokenizer.labels(data.probe_ids))
            train(
                self.config.model,
                self.config.train,
                data.train_ids,
                data.val_ids,
                None,
                N_RANKS,
                data.tokenizer.eot_id,
                callbacks=(lambda event: self._on_event(data, event),),
                should_stop=self._should_stop,
            )
            with self._lock:
                self._status = self._end_status()
        except Exception as err:  # the app shows a message; the log keeps the traceback
            log.exception("live training failed")
            with self._lock:
                self._status, self._error = FAILED, f"{type(err).__name__}: {err}"
        finally:
            with self._lock:
                self._ended_at = time.monotonic()
                status, step = self._status, self._step
            log.info(
                "%s ended: %s after %d steps in %.1f s",
                self._thread.name,
                status,
                step,
                self._ended_at - self._t0,
            )
            if self._on_end is not None:
                self._on_end(self)

    def _end_status(self) -> str:
        if self._stop.is_set():
            return STOPPED
        if self._gone_since is not None:
            return OWNER_GONE
        return FINISHED


@dataclass
class LiveRegistry:
    """The live runs training in this process, capped by the limit each `start` is given."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runs: set[LiveRun] = field(default_factory=set)

    def active(self) -> int:
        """Runs training now."""
        with self._lock:
            return len(self._runs)

    def start(
        self,
        limit: int,
        config: LiveConfig = LIVE_CONFIG,
        owner_alive: Callable[[], bool] | None = None,
    ) -> LiveRun:
        """Start a run, or raise LiveTrainingRefusedError: "disabled" when `limit` <= 0, "busy"
        when `limit` runs are training already."""
        with self._lock:
            if limit <= 0:
                raise LiveTrainingRefusedError("disabled", limit)
            if len(self._runs) >= limit:
                raise LiveTrainingRefusedError("busy", limit)
            run = LiveRun(config, owner_alive, on_end=self._forget)
            self._runs.add(run)
        return run.start()

    def _forget(self, run: LiveRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every run and wait for their threads (tests; a server's shutdown)."""
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.stop()
        for run in runs:
            run.join(timeout)


REGISTRY = LiveRegistry()

__all__ = [
    "FAILED",
    "FINISHED",
    "LIVE_CONFIG",
    "OWNER_GONE",
    "REGISTRY",
    "RUNNING",
    "STOPPED",
    "HeadSnapshot",
    "LiveConfig",
    "LiveData",
    "LiveProgress",
    "LiveRegistry",
    "LiveRun",
    "LiveTrainingRefusedError",
    "head_snapshot",
    "live_data",
]
