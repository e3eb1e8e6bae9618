"""THE stage table: one record per step of the seed article's flowchart and the page that shows
it, and the walk through the model derived from it (1 → 2 → the per-layer stages of every layer
in turn → 8 → 9)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ui.i18n import N_, _
from ui.settings import APP_DIR


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

    @property
    def url_path(self) -> str:
        """The page's URL path as Streamlit derives it from the file name ("Attention")."""
        return Path(self.path).stem.split("_", 1)[1]

    @property
    def label(self) -> str:
        """The sidebar's link and the walk's buttons: "3 · Multi-head self-attention", in the
        caller's language."""
        return f"{self.number} · {_(self.title)}"

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
    ),
    Stage(
        "attention",
        3,
        N_("Multi-head self-attention"),
        N_("Attention"),
        N_("each token gathers from earlier tokens"),
        "pages/3_Attention.py",
        per_layer=True,
    ),
    Stage(
        "feed_forward",
        4,
        N_("Feed-forward"),
        N_("Feed-forward"),
        N_("each token alone, 4× wider"),
        "pages/4_Feed_forward.py",
        per_layer=True,
    ),
    Stage(
        "layer_norm",
        5,
        N_("Layer norm"),
        N_("Layer norm"),
        N_("rescale every token's vector"),
        "pages/5_Layer_norm.py",
        per_layer=True,
    ),
    Stage(
        "residual",
        6,
        N_("Residual stream"),
        N_("Residual"),
        N_("add each block's output to the stream"),
        "pages/6_Residual.py",
        per_layer=True,
    ),
    Stage(
        "dropout",
        7,
        N_("Dropout"),
        N_("Dropout"),
        N_("random zeros, only in training"),
        "pages/7_Dropout.py",
        per_layer=True,
    ),
    Stage(
        "output",
        8,
        N_("Output probabilities & logit lens"),
        N_("Output"),
        N_("probabilities of the next token"),
        "pages/8_Output.py",
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
)
STAGE_BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}
# Stages drawn once per layer, in walk order: the walk repeats them for every block.
LAYER_STAGES: tuple[str, ...] = tuple(s.id for s in STAGES if s.per_layer)

Step = tuple[Stage, int]  # a stage and the layer it shows


def walk_neighbours(stage_id: str, layer: int, n_layer: int) -> tuple[Step | None, Step | None]:
    """(previous, next) steps of the walk from (stage, layer), in table order, except that the
    last per-layer stage leads to the first one of the next layer (7 → 3), the first one back
    to the last one of the layer before, and the stage after the per-layer ones back to the last
    layer's last one (8 → 7 of the last layer). Other steps keep the layer."""
    i = [s.id for s in STAGES].index(stage_id)
    stage = STAGES[i]
    first, last = STAGE_BY_ID[LAYER_STAGES[0]], STAGE_BY_ID[LAYER_STAGES[-1]]
    nxt: Step | None
    prev: Step | None
    if stage is last and layer < n_layer - 1:
        nxt = (first, layer + 1)
    elif i + 1 < len(STAGES):
        nxt = (STAGES[i + 1], layer)
    else:
        nxt = None
    if stage is first and layer > 0:
        prev = (last, layer - 1)
    elif i > 0 and STAGES[i - 1] is last:
        prev = (last, n_layer - 1)
    elif i > 0:
        prev = (STAGES[i - 1], layer)
    else:
        prev = None
    return prev, nxt


def step_label(step: Step) -> str:
    """A walk step's name on a button: "3 · Multi-head self-attention (layer 1)"."""
    stage, layer = step
    where = _(" (layer {layer})").format(layer=layer) if stage.per_layer else ""
    return f"{stage.label}{where}"
