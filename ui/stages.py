"""THE stage table: one record per step of the seed article's flowchart and the page that shows
it, and the walk through the model derived from it (1 → 2 → the per-layer stages of every layer
in turn → 8 → 9)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ui.i18n import N_, _
from ui.settings import APP_DIR

SECTION_INFIX = "_sec_"  # a lazy section's key: stage id, "_sec_", short id


@dataclass(frozen=True)
class Stage:
    """One step of the seed article's flowchart, and the page that shows it."""

    id: str
    number: int
    title: str  # the page title (English msgid, marked N_: translate where shown, `_(title)`)
    short_title: str  # the flowchart box (a box is narrow); a msgid too
    note: str  # one line under the flowchart box; a msgid too
    path: str  # relative to app.py, e.g. "pages/3_Attention.py"
    per_layer: bool = False  # drawn once per layer: the walk repeats it for every block
    # The page's lazy sections (`ui.widgets.lazy_section`), short ids in page order: the link's
    # `open=steps,numpy` names them (`ui.state`); each one's key is `section_key(short)`.
    sections: tuple[str, ...] = ()

    @property
    def url_path(self) -> str:
        """The page's URL path as Streamlit derives it from the file name ("Attention")."""
        return Path(self.path).stem.split("_", 1)[1]

    @property
    def label(self) -> str:
        """The sidebar's link and the walk's buttons: "3 · Multi-head self-attention", in the
        caller's language."""
        return f"{self.number} · {_(self.title)}"

    def section_key(self, short: str) -> str:
        """The element and session-state key of the page's lazy section `short`:
        "attention_sec_steps" for ("attention", "steps")."""
        return f"{self.id}{SECTION_INFIX}{short}"

    def exists(self) -> bool:
        """Whether the page file is there (a page can be left out of a deployment)."""
        return (APP_DIR / self.path).is_file()


STAGES: tuple[Stage, ...] = (
    Stage(
        "tokens",
        1,
        N_("Input & tokens"),
        N_("Tokens"),
        N_("text → token ids"),
        "pages/1_Tokens.py",
    ),
    Stage(
        "embeddings",
        2,
        N_("Embeddings"),
        N_("Embeddings"),
        N_("ids → vectors, plus position"),
        "pages/2_Embeddings.py",
        sections=("cosine", "neighbours", "article"),
    ),
    Stage(
        "attention",
        3,
        N_("Multi-head self-attention"),
        N_("Attention"),
        N_("each token gathers from earlier tokens"),
        "pages/3_Attention.py",
        per_layer=True,
        sections=("steps", "mask", "formula", "split", "numpy"),
    ),
    Stage(
        "feed_forward",
        4,
        N_("Feed-forward"),
        N_("Feed-forward"),
        N_("each token alone, 4× wider"),
        "pages/4_Feed_forward.py",
        per_layer=True,
        sections=("norms", "article"),
    ),
    Stage(
        "layer_norm",
        5,
        N_("Layer norm"),
        N_("Layer norm"),
        N_("rescale every token's vector"),
        "pages/5_Layer_norm.py",
        per_layer=True,
        sections=("numbers", "growth", "article"),
    ),
    Stage(
        "residual",
        6,
        N_("Residual stream"),
        N_("Residual"),
        N_("add each block's output to the stream"),
        "pages/6_Residual.py",
        per_layer=True,
        sections=("steps", "cosine", "article"),
    ),
    Stage(
        "dropout",
        7,
        N_("Dropout"),
        N_("Dropout"),
        N_("random zeros, only in training"),
        "pages/7_Dropout.py",
        per_layer=True,
        sections=("average", "article"),
    ),
    Stage(
        "output",
        8,
        N_("Output probabilities & logit lens"),
        N_("Output"),
        N_("probabilities of the next token"),
        "pages/8_Output.py",
        sections=("article", "pretraining"),
    ),
    Stage(
        "generate",
        9,
        N_("Generate"),
        N_("Generate"),
        N_("sample a token, append, repeat"),
        "pages/9_Generate.py",
    ),
    # Interventions: after the walk through the model, cause and effect (issue 17).
    Stage(
        "intervene",
        10,
        N_("Cause and effect"),
        N_("Cause & effect"),
        N_("switch heads off, patch, attribute"),
        "pages/10_Intervene.py",
    ),
    # The model during its training: snapshots of the bundled model's run (issue 18).
    Stage(
        "learning",
        11,
        N_("Learning: the model during training"),
        N_("Learning"),
        N_("watch the heads form over training"),
        "pages/11_Learning.py",
    ),
)
STAGE_BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}
# Every lazy section's key, of every page (`ui.widgets.lazy_section` accepts only these).
SECTION_KEYS: frozenset[str] = frozenset(s.section_key(x) for s in STAGES for x in s.sections)
# Stages drawn once per layer, in walk order: the walk repeats them for every block.
LAYER_STAGES: tuple[str, ...] = tuple(s.id for s in STAGES if s.per_layer)

Step = tuple[Stage, int]  # a stage and the layer it shows


# GPT-2's real order inside one block (pre-norm), as a walk over the stage pages, each once per
# layer: ln_1 (the Layer norm page, which also shows ln_2) -> attention -> dropout on its output
# (training only) -> the residual add (the Residual page shows both adds) -> feed-forward (which
# reads ln_2 of the stream). The article's flowchart order is LAYER_STAGES.
GPT_LAYER_STAGES: tuple[str, ...] = (
    "layer_norm",
    "attention",
    "dropout",
    "residual",
    "feed_forward",
)
ORDERS = ("article", "gpt")  # the walk's two orders; "article" is the default


def layer_stages(order: str = "article") -> tuple[str, ...]:
    """The per-layer stage ids in the walk's `order`: "article" (the seed article's flowchart,
    post-norm) or "gpt" (GPT-2's pre-norm block). Raises ValueError for another order."""
    if order not in ORDERS:
        raise ValueError(f"unknown walk order {order!r}; expected one of {ORDERS}")
    return LAYER_STAGES if order == "article" else GPT_LAYER_STAGES


def walk_neighbours(
    stage_id: str, layer: int, n_layer: int, order: str = "article"
) -> tuple[Step | None, Step | None]:
    """(previous, next) steps of the walk from (stage, layer): the stages before the per-layer
    ones in table order, then the per-layer stages in `order` (`layer_stages`) for every layer
    in turn (the last one leads to the first one of the next layer, the first one back to the
    last one of the layer before), then the stages after them (the first of those goes back to
    the last layer's last per-layer stage). Other steps keep the layer."""
    per_layer = [STAGE_BY_ID[sid] for sid in layer_stages(order)]
    before = [s for s in STAGES[: STAGES.index(STAGE_BY_ID[LAYER_STAGES[0]])] if not s.per_layer]
    after = [s for s in STAGES if not s.per_layer and s not in before]
    stage = STAGE_BY_ID[stage_id]
    first, last = per_layer[0], per_layer[-1]
    prev: Step | None
    nxt: Step | None
    if stage.per_layer:
        k = per_layer.index(stage)
        if k + 1 < len(per_layer):
            nxt = (per_layer[k + 1], layer)
        elif layer < n_layer - 1:
            nxt = (first, layer + 1)
        else:
            nxt = (after[0], layer) if after else None
        if k > 0:
            prev = (per_layer[k - 1], layer)
        elif layer > 0:
            prev = (last, layer - 1)
        else:
            prev = (before[-1], layer) if before else None
        return prev, nxt
    group = before if stage in before else after
    k = group.index(stage)
    if k + 1 < len(group):
        nxt = (group[k + 1], layer)
    else:
        nxt = (first, layer) if group is before else None
    if k > 0:
        prev = (group[k - 1], layer)
    else:
        prev = None if group is before else (last, n_layer - 1)
    return prev, nxt


def step_label(step: Step) -> str:
    """A walk step's name on a button: "3 · Multi-head self-attention (layer 1)"."""
    stage, layer = step
    where = _(" (layer {layer})").format(layer=layer) if stage.per_layer else ""
    return f"{stage.label}{where}"
