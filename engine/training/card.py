"""Building the model card (`engine.card.ModelCard`) of a run's checkpoint: what the run recorded
plus every number the evaluation measured, rounded as the card stores them (4 decimals).
`python -m engine card` writes it into config.json and renders MODEL_CARD.md from it
(engine/training/card_markdown.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from engine.card import (
    Control,
    CurvePoint,
    Diagnostics,
    InductionProbe,
    ModelCard,
    TokenizerCost,
    TrainingSpeed,
    TrainStage,
)
from engine.config import GPTConfig, TrainConfig
from engine.training.evaluate import EvalReport, rounded, rounded_head
from engine.training.measure import machine_description
from engine.training.probes import (
    INDUCTION_BAR,
    PREVIOUS_TOKEN_BAR,
    InductionResult,
    best_head,
    heads_above,
)

SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
EVALUATE_COMMAND = "python -m engine evaluate --model assets/model"


def single_stage(run_card: ModelCard, last_step: int) -> TrainStage:
    """The one stage of a run that was never paused and resumed with other settings."""
    tc = run_card.train_config or TrainConfig()
    return TrainStage(
        first_step=0,
        last_step=last_step,
        command=run_card.train_command or "not recorded",
        synthetic_share=tc.synthetic_share,
        synthetic_segment=tc.synthetic_segment,
        synthetic_min_count=tc.synthetic_min_count,
        copy_first_steps=tc.copy_first_steps,
        position_init=tc.position_init,
        wall_clock_s=None,
    )


def with_copy_rows(stages: list[TrainStage], batch: int) -> list[TrainStage]:
    """Each stage with `copy_rows_per_batch` = round(synthetic_share x batch)."""
    return [
        replace(st, copy_rows_per_batch=round(float(st.synthetic_share) * batch)) for st in stages
    ]


def natural_tokens(stages: list[TrainStage], batch: int, tokens_per_step: int) -> int:
    """Shakespeare tokens seen over the stages: the rows of each batch that are not copy-task
    rows; steps before a stage's `copy_first_steps` hold copy-task rows only."""
    natural = 0
    for st in stages:
        natural_rows = batch - st.copy_rows_per_batch
        mixed_from = max(st.first_step, min(st.copy_first_steps, st.last_step))
        steps = st.last_step - mixed_from
        natural += steps * tokens_per_step * natural_rows // max(1, batch)
    return natural


def _scores(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.round(matrix, 4))


def _induction_probe(result: InductionResult | None) -> InductionProbe | None:
    if result is None:
        return None
    return InductionProbe(
        scores=_scores(result.scores),
        best_head=rounded_head(best_head(result.scores)),
        first_half_loss=round(result.first_half_loss, 4),
        repeat_loss=round(result.repeat_loss, 4),
    )


def measured_fields(report: EvalReport) -> dict[str, Any]:
    """The card's fields that `report` measured, rounded to 4 decimals."""
    return {
        "val_loss": round(report.val_loss, 4),
        "val_targets": report.val_targets,
        "train_loss": round(report.train_loss, 4),
        "train_targets": report.train_targets,
        "baselines": None if report.baselines is None else rounded(report.baselines),
        "best_previous_token_head": rounded_head(report.best_previous),
        "best_induction_head": rounded_head(report.best_induction),
        "previous_token_heads": heads_above(report.previous_token, PREVIOUS_TOKEN_BAR),
        "induction_heads": heads_above(report.induction, INDUCTION_BAR),
        "induction_first_half_loss": round(report.induction_first_half_loss, 4),
        "induction_repeat_loss": round(report.induction_repeat_loss, 4),
        "induction_all_ids": _induction_probe(report.induction_all_ids),
        "thresholds_met": report.bars(),
        "protocol": report.protocol,
        "samples": tuple(report.samples),
        "previous_token_scores": _scores(report.previous_token),
        "induction_scores": _scores(report.induction),
    }


def build_card(
    report: EvalReport,
    run_card: ModelCard,
    state: dict[str, Any],
    config: GPTConfig,
    *,
    costs: list[TokenizerCost] | None = None,
    speed: list[TrainingSpeed] | None = None,
    curve: list[CurvePoint] | None = None,
    control: Control | None = None,
    validation_works: tuple[str, ...] = (),
    stages: list[TrainStage] | None = None,
    other_runs: list[CurvePoint] | None = None,
    diagnosis: Diagnostics | None = None,
) -> ModelCard:
    """The card of the shipped `config.json`: what the run recorded (`run_card`, with its
    `train_config`; its `train_state.json` `state`: step, tokens_seen, elapsed_s, history) plus
    every measured number of `report` and of the optional measurements.

    `stages`: the commands that produced the checkpoint, in order (a run paused with
    `--stop-at` and resumed with other settings has several); default one stage from
    `run_card`."""
    batch = run_card.train_config.batch_size if run_card.train_config else 0
    stages = with_copy_rows(stages or [single_stage(run_card, state["step"])], batch)
    walls = [st.wall_clock_s for st in stages]
    tokens_per_step = state["tokens_seen"] // max(1, state["step"])
    return replace(
        run_card,
        checkpoint_step=state["step"],
        max_steps=run_card.train_config.max_steps if run_card.train_config else None,
        tokens_seen=state["tokens_seen"],
        natural_tokens_seen=natural_tokens(stages, batch, tokens_per_step),
        train_step_time_s=round(state["elapsed_s"], 1),
        wall_clock_s=round(sum(walls)) if all(w is not None for w in walls) else None,
        machine=machine_description(),
        n_params=config.n_params(),
        val_history=tuple((h["step"], round(h["val_loss"], 4)) for h in state["history"]),
        evaluate_command=EVALUATE_COMMAND,
        corpus_sdist_sha256=SDIST_SHA256,
        validation_works=tuple(validation_works),
        train_stages=tuple(stages),
        **measured_fields(report),
        tokenizer_costs=tuple(costs or ()),
        training_speed=tuple(speed or ()),
        curve=tuple(curve or ()),
        control_without_synthetic=control,
        other_runs=tuple(other_runs or ()),
        diagnostics=diagnosis,
    )
