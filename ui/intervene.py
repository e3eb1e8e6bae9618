"""Page 10 (cause and effect): its presets and the ablation written in the address (the caches
of its interventions are in `ui.cache`, with every other cache).

The address carries the ablated heads and MLPs (`ablate=1.2,0.3,mlp1`, `ablate_mode=mean`) and
the two prompts of activation patching (`clean=`, `corrupt=`): `ui.state`'s interventions block.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.interventions import (
    MODES,
    Ablation,
    format_heads,
)
from ui.i18n import N_, _

MAX_PATCH_TOKENS = 64  # patching runs the model L * T + L * H + L times: texts are kept short
MAX_PROMPT_CHARS = 1000  # each prompt box (64 tokens are rarely more than a few hundred)


@dataclass(frozen=True)
class KnockOutPreset:
    """A prepared knock-out: the text, what to ablate, the position to look at, and why (the
    effect measured on the bundled model; tests/pages/test_intervene.py checks it)."""

    name: str
    text: str
    ablate: str
    pos: int
    why: str


REPEATED = "The green cat drinks purple milk at noon. The green cat drinks purple milk at noon."
KNOCK_OUT_PRESETS: tuple[KnockOutPreset, ...] = (
    KnockOutPreset(
        N_("Copy heads 1.0 and 1.1 off on a repeated line"),
        REPEATED,
        "1.0,1.1",
        20,
        N_(
            "On the bundled model, after “␣pur” in the second copy the model expects “ple” "
            "with p ≈ 0.97; with the two induction heads zeroed, p ≈ 0.07, and the loss on the "
            "second copy rises by about 6 nats while the first copy hardly changes."
        ),
    ),
    KnockOutPreset(
        N_("Induction head 1.0 alone"),
        REPEATED,
        "1.0",
        20,
        N_("One induction head off: the second copy's loss rises by almost 5 nats on average."),
    ),
    KnockOutPreset(
        N_("Previous-token head 0.3 (what the induction heads build on)"),
        REPEATED,
        "0.3",
        20,
        N_(
            "Without the previous-token head the layer-1 heads cannot find the token after the "
            "earlier occurrence: copying suffers although no layer-1 head was touched."
        ),
    ),
)


@dataclass(frozen=True)
class PatchingPreset:
    """Two prompts of the same token length and the tokens compared."""

    name: str
    clean: str
    corrupt: str
    answer: str
    wrong: str
    why: str


PATCHING_PRESETS: tuple[PatchingPreset, ...] = (
    PatchingPreset(
        N_("What does the cat drink? (copying from earlier in the text)"),
        "The green cat drinks water at noon. The green cat drinks",
        "The green cat drinks fire at noon. The green cat drinks",
        " water",
        " fire",
        N_(
            "Only one token differs (water / fire). On the bundled model the residual stream "
            "at that position restores all of the difference up to layer 1, and of the layer-1 "
            "heads, induction head 1.0 restores the most: it carries the word from its first "
            "mention to the end."
        ),
    ),
)


def parse_ablation(raw: str, mode: str, n_layer: int, n_head: int) -> tuple[Ablation, list[str]]:
    """The ablation an `ablate` value names ("1.2,0.3,mlp1": heads as layer.head, MLPs as mlpL),
    and a notice for each part that is not a head or MLP of this model (ignored). `mode` other
    than zero/mean counts as zero."""
    heads, mlps, bad = set(), set(), []
    for part in raw.split(",")[:500]:
        part = part.strip()
        if not part:
            continue
        if part.startswith("mlp") and part[3:].isdigit() and int(part[3:]) < n_layer:
            mlps.add(int(part[3:]))
            continue
        layer, dot, head = part.partition(".")
        if dot and layer.isdigit() and head.isdigit() and len(part) < 12:
            if int(layer) < n_layer and int(head) < n_head:
                heads.add((int(layer), int(head)))
                continue
        bad.append(part[:20])
    notices = [
        _("“{part}” is not a head (layer.head) or an MLP (mlpL) of this model; ignored.").format(
            part=part
        )
        for part in bad
    ]
    return Ablation(frozenset(heads), frozenset(mlps), mode if mode in MODES else "zero"), notices


def ablation_value(ablation: Ablation) -> str:
    """The `ablate` value of an ablation: heads, then MLPs ("0.3,1.2,mlp1")."""
    parts = [format_heads(ablation.heads)] if ablation.heads else []
    parts += [f"mlp{layer}" for layer in sorted(ablation.mlps)]
    return ",".join(parts)
