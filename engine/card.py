"""The model card: what a checkpoint's training run recorded and what its evaluation measured.

A typed, frozen record stored in the checkpoint's `config.json` under `inside_gpt.card`
(`transformers` ignores the key). `ModelCard.to_dict` writes it, `ModelCard.from_dict` reads it
back field by field (types checked, unknown keys refused), and `read_card(directory)` reads it
from a checkpoint directory. A run's own checkpoints carry only `trained_on`, `train_command`
and `train_config`; `python -m engine card` (engine/training/card.py) fills in every measured
field, and engine/training/card_markdown.py renders MODEL_CARD.md from it.

This module is core engine: the app reads the card through it without importing
engine/training. Numbers are stored as numbers; every sentence of the card is rendered from
them, never parsed back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import TrainConfig


class CardError(ValueError):
    """A card in config.json that does not have the expected fields or types."""


# --- parts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadScore:
    """One attention head and its score on a probe (heads are named `layer.index`)."""

    layer: int
    index: int
    score: float

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.index}"


@dataclass(frozen=True)
class TrainStage:
    """One command of a run that was paused (`--stop-at`) and resumed with other settings."""

    first_step: int
    last_step: int
    command: str
    synthetic_share: float
    synthetic_segment: int
    synthetic_min_count: int
    copy_first_steps: int
    position_init: str
    wall_clock_s: int | None  # from the stage's training log; None when not known
    copy_rows_per_batch: int = 0  # round(synthetic_share * batch_size), filled in by the card


@dataclass(frozen=True)
class Baselines:
    """Validation loss (nats per token) of n-gram models fitted on the training split."""

    unigram: float  # add-one smoothed
    bigram_kn: float  # interpolated Kneser-Ney
    trigram_kn: float
    discounts_bigram: tuple[float, ...]
    discounts_trigram: tuple[float, ...]
    n_train_tokens: int
    n_val_targets: int


@dataclass(frozen=True)
class InductionProbe:
    """The induction probe over every ordinary id (not only those seen in training)."""

    scores: tuple[tuple[float, ...], ...]  # [n_layer][n_head]
    best_head: HeadScore
    first_half_loss: float  # nats
    repeat_loss: float  # nats


@dataclass(frozen=True)
class Thresholds:
    """Which of the bars (issue 3) the checkpoint clears."""

    val_below_bigram: bool  # validation loss below the Kneser-Ney bigram
    previous_token: bool  # a head with previous-token score >= the bar
    induction: bool  # a head with induction score >= the bar
    repeat_lower: bool  # lower loss on the repeated half of random tokens


@dataclass(frozen=True)
class Protocol:
    """How the card's numbers were measured; its sentences are rendered from these numbers."""

    seq_len: int  # tokens per window of the loss estimates
    prev_windows: int  # held-out windows of the previous-token probe
    prev_window: int  # tokens per such window (the model's context)
    induction_half: int  # random tokens, then the same tokens again
    induction_pool: int  # distinct ordinary ids that occur in the training split
    ordinary_ids: int  # every ordinary id (the vocabulary without <|endoftext|>)
    induction_seeds: tuple[int, ...]
    train_windows: int  # windows of the training-loss estimate; 0 = every window

    @property
    def previous_token(self) -> str:
        return (
            f"{self.prev_windows} evenly spaced {self.prev_window}-token windows "
            "of the validation split"
        )

    @property
    def induction(self) -> str:
        return (
            f"{self.induction_half} random tokens drawn uniformly from the "
            f"{self.induction_pool:,} ids that occur in the training split, repeated twice, "
            f"seeds {list(self.induction_seeds)}"
        )

    @property
    def induction_all_ids(self) -> str:
        return (
            f"{self.induction_half} random tokens drawn uniformly from all "
            f"{self.ordinary_ids:,} ordinary ids, repeated twice, seeds "
            f"{list(self.induction_seeds)}"
        )

    @property
    def train_loss(self) -> str:
        if not self.train_windows:
            return "every window"
        return f"{self.train_windows} evenly spaced windows"


@dataclass(frozen=True)
class Sample:
    """A continuation of `prompt` (the new text only)."""

    prompt: str
    mode: str  # "greedy" or "temperature 0.8, top-k 40, seed 0"
    text: str


@dataclass(frozen=True)
class TokenizerCost:
    """cl100k_base cut to `n_ranks`: its cost on the corpus and in a model of the card's shape."""

    n_ranks: int
    chars_per_token: float
    corpus_tokens: int
    embedding_params: int
    model_params: int
    embedding_share: float
    unembedding_flop_share: float


@dataclass(frozen=True)
class TrainingSpeed:
    """Measured training throughput of the card's shape with an `n_ranks` vocabulary."""

    n_ranks: int
    tokens_per_s: int
    threads: int


@dataclass(frozen=True)
class CurvePoint:
    """One checkpoint measured with the card's protocol (a learning-curve row, a control run's
    row, or another recipe's last checkpoint)."""

    step: int
    tokens_seen: int
    val_loss: float
    best_previous_token: HeadScore
    best_induction: HeadScore
    induction_first_half_loss: float
    induction_repeat_loss: float
    best_induction_all_ids: HeadScore | None = None
    label: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class Control:
    """The run against a control run without the synthetic copy task, at the same step."""

    step: int
    with_synthetic: CurvePoint
    without_synthetic: CurvePoint
    note: str
    command: str


@dataclass(frozen=True)
class Diagnostics:
    """Facts that explain missing heads (engine.training.measure.diagnostics)."""

    position_cos_next: float
    position_cos_10: float
    attention_entropy: tuple[float, ...]  # nats, per layer
    uniform_entropy: float
    unseen_ids: int
    unseen_ids_mean_cos: float
    frequent_ids_mean_cos: float


# --- the card ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCard:
    """Everything known about a checkpoint's training and quality. Only `trained_on` is
    required; a run's own checkpoints carry the first three fields, a shipped card all of them
    (losses in nats per token, head scores per [layer][head])."""

    trained_on: str
    train_command: str | None = None
    train_config: TrainConfig | None = None
    checkpoint_step: int | None = None
    max_steps: int | None = None  # the step the learning-rate schedule was planned for
    tokens_seen: int | None = None
    natural_tokens_seen: int | None = None  # of them Shakespeare (not copy-task rows)
    train_step_time_s: float | None = None
    wall_clock_s: int | None = None
    machine: str | None = None
    n_params: int | None = None
    val_history: tuple[tuple[int, float], ...] = ()  # (step, validation loss) during training
    evaluate_command: str | None = None
    corpus_sdist_sha256: str | None = None
    validation_works: tuple[str, ...] = ()
    train_stages: tuple[TrainStage, ...] = ()
    val_loss: float | None = None
    val_targets: int | None = None
    train_loss: float | None = None
    train_targets: int | None = None
    baselines: Baselines | None = None
    best_previous_token_head: HeadScore | None = None
    best_induction_head: HeadScore | None = None
    previous_token_heads: tuple[str, ...] = ()  # "layer.head" at or above the bar
    induction_heads: tuple[str, ...] = ()
    induction_first_half_loss: float | None = None
    induction_repeat_loss: float | None = None
    induction_all_ids: InductionProbe | None = None
    thresholds_met: Thresholds | None = None
    protocol: Protocol | None = None
    samples: tuple[Sample, ...] = ()
    previous_token_scores: tuple[tuple[float, ...], ...] = ()
    induction_scores: tuple[tuple[float, ...], ...] = ()
    tokenizer_costs: tuple[TokenizerCost, ...] = ()
    training_speed: tuple[TrainingSpeed, ...] = ()
    curve: tuple[CurvePoint, ...] = ()
    control_without_synthetic: Control | None = None
    other_runs: tuple[CurvePoint, ...] = ()
    diagnostics: Diagnostics | None = None
    reproduction_note: str | None = None
    # how the learning curve's and the other recipes' induction scores were measured, when
    # that differs from the shipped checkpoint's (those checkpoints are not kept)
    induction_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in config.json; optional fields left unset are omitted."""
        return _encode(self)

    @classmethod
    def from_dict(cls, raw: Any) -> ModelCard:
        """Read a card written by `to_dict`. Raises CardError on a missing required field, a
        value of the wrong type or an unknown key."""
        return _decode(cls, raw, "card")

    @classmethod
    def summary_of(cls, raw: Any) -> ModelCard | None:
        """The summary of a card that `from_dict` refuses (one written by an older version, or
        by hand): what it was trained on, how far training got and the validation loss, where
        they have the expected types; None when `raw` is not a JSON object. The validation
        loss is also read under the names older cards used (`validation_loss`,
        `best_val_loss`)."""
        if not isinstance(raw, dict):
            return None
        trained_on = raw.get("trained_on")
        fields: dict[str, Any] = {
            "trained_on": trained_on if isinstance(trained_on, str) else "not recorded"
        }
        for name in ("checkpoint_step", "max_steps", "tokens_seen"):
            if isinstance(raw.get(name), int) and _measurable(raw[name]) and raw[name] >= 0:
                fields[name] = raw[name]
        for name in ("val_loss", "validation_loss", "best_val_loss"):
            value = raw.get(name)
            if _measurable(value):
                fields["val_loss"] = float(value)
                break
        return cls(**fields)


def read_card(directory: str | Path) -> ModelCard | None:
    """The card in `directory/config.json` (`inside_gpt.card`), or None when there is none.
    Raises CardError when there is a card that cannot be read, OSError / ValueError when
    config.json cannot be read."""
    raw = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    extra = raw.get("inside_gpt") if isinstance(raw, dict) else None
    if not isinstance(extra, dict) or extra.get("card") is None:
        return None
    return ModelCard.from_dict(extra["card"])


# --- encoding and decoding -----------------------------------------------------------------------


def _optional(field: dataclasses.Field) -> bool:
    return field.default is None or field.default == ()


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if _optional(f) and v == f.default:
                continue
            out[f.name] = _encode(v)
        return out
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(tp: Any, raw: Any, where: str) -> Any:
    """`raw` (parsed JSON) as a value of type `tp`: a dataclass, `X | None`, `tuple[X, ...]`,
    a fixed tuple, int, float, str or bool."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, raw, where)
    if origin is tuple:
        if not isinstance(raw, list):
            raise CardError(f"{where}: expected a list, got {type(raw).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(raw))
        if len(raw) != len(args):
            raise CardError(f"{where}: expected {len(args)} values, got {len(raw)}")
        pairs = enumerate(zip(args, raw, strict=True))
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, raw, where)
    return _decode_scalar(tp, raw, where)


def _measurable(raw: Any) -> bool:
    """Whether `raw` (parsed JSON) is a number a card may hold: a finite float, or an integer
    of magnitude below 2**63 (a count); checked before any arithmetic (float() of a 400-digit
    integer raises OverflowError; NaN and Infinity would be shown as "nan" and "inf")."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return False
    return abs(raw) < 2**63 if isinstance(raw, int) else math.isfinite(raw)


def _decode_scalar(tp: Any, raw: Any, where: str) -> Any:
    if tp is float and _measurable(raw):
        return float(raw)
    if tp is int and isinstance(raw, int) and _measurable(raw):
        return raw
    if tp in (str, bool) and isinstance(raw, tp):
        return raw
    raise CardError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {raw!r:.60}")


def _decode_dataclass(cls: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise CardError(f"{where}: expected an object, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise CardError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    kwargs = {k: _decode(hints[k], v, f"{where}.{k}") for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # a missing field, or the class's own validation
        raise CardError(f"{where}: {err}") from err


__all__ = [
    "Baselines",
    "CardError",
    "Control",
    "CurvePoint",
    "Diagnostics",
    "HeadScore",
    "InductionProbe",
    "ModelCard",
    "Protocol",
    "Sample",
    "Thresholds",
    "TokenizerCost",
    "TrainStage",
    "TrainingSpeed",
    "read_card",
]
