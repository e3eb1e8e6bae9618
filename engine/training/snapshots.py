"""Write the shipped training snapshots (assets/snapshots, issue 18) from a run's weights-only
snapshots: each one's weights in float16 (about 5 MB for the bundled shape instead of 10 MB),
its config.json without the run's card (the bundled model's config.json keeps the history),
and the manifest `engine.snapshots.read_manifest` reads.

    python -m engine.training.snapshots OUT STEP=DIR ... [--init-step 0 --seed 1337]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.snapshots import MANIFEST_NAME


def write_snapshot(source: Path, out: Path, step: int) -> Path:
    """Copy the GPT-2 directory `source` to `out/step_NNNNNN/` with float16 weights and a
    config.json that records the step. Returns the folder."""
    folder = out / f"step_{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    state = load_file(str(source / "model.safetensors"))
    half = {k: v.to(torch.float16).contiguous() for k, v in state.items()}
    save_file(half, str(folder / "model.safetensors"), metadata={"format": "pt"})
    raw = json.loads((source / "config.json").read_text(encoding="utf-8"))
    raw.setdefault("inside_gpt", {})["snapshot"] = {
        "step": step,
        "of": "bundled",
        "stored_dtype": "float16 (cast from the run's float32 weights)",
    }
    raw["torch_dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("sources", nargs="+", help="STEP=DIR of a run's snapshot")
    parser.add_argument("--why", action="append", default=[], help="STEP=one sentence")
    parser.add_argument("--init-step", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--final-step", type=int, required=True)
    parser.add_argument("--phase-change", type=int, nargs=2, required=True)
    args = parser.parse_args()
    why = dict(item.split("=", 1) for item in args.why)
    entries = [{"step": args.init_step, "dir": None, "seed": args.seed, "why": why.get(str(0), "")}]
    for item in args.sources:
        step_s, source = item.split("=", 1)
        step = int(step_s)
        folder = write_snapshot(Path(source), args.out, step)
        entries.append({"step": step, "dir": folder.name, "why": why.get(step_s, "")})
    manifest = {
        "what": "Earlier states of the bundled model's one training run (issue 18).",
        "final_step": args.final_step,
        "phase_change": args.phase_change,
        "snapshots": entries,
    }
    (args.out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
