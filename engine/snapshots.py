"""The bundled model's training snapshots and its recorded training history (issue 18).

The bundled model (assets/model, step 20,000 of one training run) ships with a few earlier
states of the same run, listed in `assets/snapshots/manifest.json`:

- step 0, the initialisation, is not stored: it is rebuilt from the training code's seeded
  initialisation (`random_model(config, seed=1337, sinusoidal_positions=True)`, the call
  `engine.training.train._start` makes for a fresh run). Checked here: steps 0-50 re-run from it
  reproduced the stored step-50 snapshot to 3.5e-6 (max |difference|; 1 thread instead of the
  run's 2), where init and step 50 differ by 0.037.
- the others are Hugging Face GPT-2 directories under `assets/snapshots/step_NNNNNN/`
  (config.json + model.safetensors in float16, about 5 MB each; computed in float32 here).

The history (`TrainingHistory`) is what the run recorded in the bundled config.json under
`inside_gpt.bilingual_card`: the snapshot evaluations ("curve": held-out loss per language,
previous-token scores per language and head, induction scores per head) and the in-training
validation estimates ("state.history"). The run logged no training loss (only its progress bar
showed it): there is none here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.card import ModelCard
from engine.checkpoints import (
    ASSETS_DIR,
    BUNDLED_DIR,
    CheckpointError,
    LoadedModel,
    config_from_hf,
    load_directory,
    random_model,
)
from engine.tokenizer import cl100k_truncated

SNAPSHOTS_DIR = ASSETS_DIR / "snapshots"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Snapshot:
    """One shipped state of the bundled model's training run.

    step: optimizer steps taken (0 = the initialisation). folder: its GPT-2 directory, or None
    for one rebuilt from `seed` (step 0). why: one English sentence (the manifest's), why this
    step is shipped."""

    step: int
    folder: Path | None
    why: str
    seed: int | None = None


@dataclass(frozen=True)
class Manifest:
    """`assets/snapshots/manifest.json`: the shipped snapshots (ascending steps, the final model
    not among them), the final step (the bundled model itself), and the phase change: the steps
    [start, end] of the copy-task stage in which the induction heads formed."""

    snapshots: tuple[Snapshot, ...]
    final_step: int
    phase_change: tuple[int, int]

    @property
    def steps(self) -> tuple[int, ...]:
        """Every step a page can show: the snapshots' and the final one."""
        return (*(s.step for s in self.snapshots), self.final_step)

    def snapshot(self, step: int) -> Snapshot | None:
        """The snapshot at `step`, or None when none is shipped there."""
        return next((s for s in self.snapshots if s.step == step), None)


def read_manifest(directory: Path = SNAPSHOTS_DIR) -> Manifest | None:
    """The manifest in `directory`, or None when there is none (a deployment without snapshots).
    Raises CheckpointError for one that cannot be read."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        snaps = []
        for entry in raw["snapshots"]:
            step = int(entry["step"])
            folder = directory / entry["dir"] if entry.get("dir") else None
            if folder is not None and folder.parent != directory:
                raise ValueError(f"snapshot folder {entry['dir']!r} is outside {directory}")
            snaps.append(Snapshot(step, folder, str(entry["why"]), entry.get("seed")))
        start, end = raw["phase_change"]
        return Manifest(
            tuple(sorted(snaps, key=lambda s: s.step)), int(raw["final_step"]), (start, end)
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} cannot be read: {err}") from err


def load_snapshot(snapshot: Snapshot, bundled_dir: Path = BUNDLED_DIR) -> LoadedModel:
    """The model at `snapshot` (float32, eval mode, frozen), named "bundled@STEP": read from its
    folder, or for step 0 rebuilt from its seed in the bundled model's configuration and
    tokenizer (`bundled_dir`'s config.json). Raises CheckpointError."""
    name = f"bundled@{snapshot.step}"
    if snapshot.folder is not None:
        return load_directory(snapshot.folder, name=name)
    if snapshot.seed is None:
        raise CheckpointError(f"snapshot {snapshot.step} has neither a folder nor a seed")
    raw = json.loads((bundled_dir / "config.json").read_text(encoding="utf-8"))
    config = config_from_hf(raw)
    n_ranks = int(raw["inside_gpt"]["tokenizer"]["n_ranks"])
    return LoadedModel(
        name=name,
        model=random_model(config, seed=snapshot.seed, sinusoidal_positions=True),
        tokenizer=cl100k_truncated(n_ranks),
        source=f"the training run's initialisation, rebuilt from seed {snapshot.seed}",
        card=ModelCard(trained_on="nothing yet (step 0 of the bundled model's run)"),
    )


# --- the recorded history -------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingHistory:
    """What the bundled model's run recorded, as arrays (all read from config.json, nothing
    computed here).

    eval_steps [S]: steps of the snapshot evaluations ("curve").
    eval_loss: language -> [S] held-out cross-entropy (nats per token) at those steps.
    previous: language -> [S, n_layer, n_head] previous-token score of every head on that
        language's held-out text.
    induction [S, n_layer, n_head]: induction score on repeated random tokens.
    val_steps [K]: steps of the in-training validation estimates ("state.history").
    val_loss: language -> [K] those estimates (nats per token; fewer windows than eval_loss).
    """

    eval_steps: np.ndarray
    eval_loss: dict[str, np.ndarray]
    previous: dict[str, np.ndarray]
    induction: np.ndarray
    val_steps: np.ndarray
    val_loss: dict[str, np.ndarray]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.eval_loss)


def history_of(raw_config: dict[str, Any]) -> TrainingHistory | None:
    """The training history in a config.json dictionary (`inside_gpt.bilingual_card`), or None
    when it records none (any model but the bundled one)."""
    extra = raw_config.get("inside_gpt")
    card = extra.get("bilingual_card") if isinstance(extra, dict) else None
    if not isinstance(card, dict) or not card.get("curve"):
        return None
    curve = sorted(card["curve"], key=lambda e: e["step"])
    langs = list(curve[0]["languages"])
    history = sorted(card.get("state", {}).get("history", []), key=lambda e: e["step"])

    def arr(values: list[Any]) -> np.ndarray:
        out = np.asarray(values, dtype=np.float64)
        out.flags.writeable = False
        return out

    return TrainingHistory(
        eval_steps=arr([e["step"] for e in curve]),
        eval_loss={lang: arr([e["languages"][lang]["val_loss"] for e in curve]) for lang in langs},
        previous={
            lang: arr([e["languages"][lang]["previous_token"] for e in curve]) for lang in langs
        },
        induction=arr([e["induction"] for e in curve]),
        val_steps=arr([e["step"] for e in history]),
        val_loss={
            lang: arr([e[f"val_loss_{lang}"] for e in history])
            for lang in langs
            if history and f"val_loss_{lang}" in history[0]
        },
    )


def read_history(directory: Path = BUNDLED_DIR) -> TrainingHistory | None:
    """`history_of` the config.json in `directory` (None when it is missing or records none)."""
    path = directory / "config.json"
    if not path.is_file():
        return None
    return history_of(json.loads(path.read_text(encoding="utf-8")))
