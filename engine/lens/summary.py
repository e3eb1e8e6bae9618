"""Per-layer summaries of a Trace: the small per-token numbers of every layer that the
Feed-forward, Layer-norm and Residual pages read, computed in one streaming pass.

Those pages show a number of every layer for every token (the size of each MLP's output, the
statistics entering each LayerNorm, the size of the residual stream and of each part written
into it). On a lazy Trace each of them reads sites of every block's two halves, so on GPT-2
small at 1,024 tokens, where the app's shared unit cache cannot keep every layer's recomputed
halves, each rerun of those pages recomputed about one forward pass. `layer_summary` reads each
block once (`Trace.get_layer(..., keep=False)`: both halves computed once, used, dropped, the
cache left as it was) and keeps [layers, T] arrays of float64: about 1.8 MB for GPT-2 small at
1,024 tokens, against 45 MiB for the Trace's stored residual stream. The app caches one per
text (`ui.cache.get_layer_summary`).

Every number equals, bit for bit, what `engine.lens.feed_forward.mlp_out_norms`,
`engine.lens.layer_norm.all_ln_stats` (without ln_f) and `engine.lens.residual`'s
`residual_norms`, `cosine_to_final`, `contributions` and `residual_steps` compute: the same
row-wise formulas on the same arrays (`row_norms`, `row_cosines`, `stats_of`), each token's row
reduced on its own (tests/engine/lens/test_summary.py, against a full capture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.lens.layer_norm import LNStats, stats_of
from engine.lens.residual import (
    STEP_SITES,
    Contributions,
    ResidualStep,
    final_units,
    part_names,
    row_cosines,
    row_norms,
)
from engine.trace import Trace

# The sites of block i that one pass reads: the residual at its three points, the two branch
# outputs and the two LayerNorms' divisors.
_SITES = (
    "hook_resid_pre",
    "ln1.hook_scale",
    "hook_attn_out",
    "hook_resid_mid",
    "ln2.hook_scale",
    "hook_mlp_out",
    "hook_resid_post",
)


@dataclass(frozen=True)
class LayerSummary:
    """Per-token numbers of every layer of one Trace (L layers, T tokens; all float64).

    residual_norms: [L + 1, T] ‖x‖ of the residual after the embeddings, then after each block
        (`engine.lens.residual.residual_norms`).
    cosine_to_final: [L + 1, T] cosine of those residuals with the final one
        (`engine.lens.residual.cosine_to_final`).
    part_sizes: [2 + 2L, T] ‖part‖ of each part written into the stream, in the order of
        `engine.lens.residual.part_names` (token embedding, position embedding, attention 0,
        MLP 0, ...).
    part_along_final: [2 + 2L, T] each part's component along its token's final residual.
    step_before, step_after, step_cosine: [2L, T] for each residual addition x + f(x)
        (attention 0, MLP 0, attention 1, ...): ‖x‖, ‖x + f(x)‖ and cos(x, f(x)); ‖f(x)‖ is
        `part_sizes[2:]`.
    ln_mean, ln_std, ln_scale: [2L, T] of the residual entering ln_1 and ln_2 of each layer
        (ln_1 0, ln_2 0, ln_1 1, ...): mean and population standard deviation over its d
        features, and the recorded divisor sqrt(var + eps) (`hook_scale`).
    """

    residual_norms: np.ndarray
    cosine_to_final: np.ndarray
    part_sizes: np.ndarray
    part_along_final: np.ndarray
    step_before: np.ndarray
    step_after: np.ndarray
    step_cosine: np.ndarray
    ln_mean: np.ndarray
    ln_std: np.ndarray
    ln_scale: np.ndarray

    @property
    def n_layer(self) -> int:
        return self.residual_norms.shape[0] - 1

    @property
    def mlp_out_norms(self) -> np.ndarray:
        """[L, T] ‖hook_mlp_out‖ of each layer and token
        (`engine.lens.feed_forward.mlp_out_norms`)."""
        return self.part_sizes[3::2]

    def ln_stats(self) -> list[LNStats]:
        """The statistics entering ln_1 and ln_2 of every layer, in forward order: the first
        2L entries of `engine.lens.layer_norm.all_ln_stats` (ln_f's is not here: it needs the
        final unit, which computes the logits)."""
        return [
            LNStats(
                name=f"blocks.{i // 2}.{'ln1' if i % 2 == 0 else 'ln2'}",
                mean=self.ln_mean[i],
                std=self.ln_std[i],
                scale=self.ln_scale[i],
            )
            for i in range(2 * self.n_layer)
        ]

    def contributions(self, pos: int) -> Contributions:
        """`engine.lens.residual.contributions(trace, pos)`: what each part wrote into token
        `pos` (IndexError outside 0..T-1)."""
        return Contributions(
            names=part_names(self.n_layer),
            sizes=self.part_sizes[:, pos],
            along_final=self.part_along_final[:, pos],
            final_norm=float(self.residual_norms[-1, pos]),
        )

    def residual_steps(self, pos: int) -> list[ResidualStep]:
        """`engine.lens.residual.residual_steps(trace, pos)`: every x + f(x) for token `pos`."""
        return [
            ResidualStep(
                f"layer {i // 2} {STEP_SITES[i % 2][0]}",
                float(self.step_before[i, pos]),
                float(self.part_sizes[2 + i, pos]),
                float(self.step_after[i, pos]),
                float(self.step_cosine[i, pos]),
            )
            for i in range(2 * self.n_layer)
        ]

    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return int(sum(np.asarray(a).nbytes for a in vars(self).values()))


def layer_summary(trace: Trace) -> LayerSummary:
    """The `LayerSummary` of `trace`, in one pass over its layers: block i's sites are read
    together (`Trace.get_layer(..., keep=False)`: on a lazy Trace its attention half and its
    MLP half are computed once each, used and dropped, and no unit another reader keeps is
    evicted), so memory stays at one block's activations plus a few [T, d] float64 rows."""
    L = trace.config.n_layer
    final = trace.get("hook_resid_post", L - 1)
    final_norm = row_norms(final)
    unit = final_units(final, final_norm)
    embeds = [trace["hook_embed"], trace["hook_pos_embed"]]
    part_sizes = [row_norms(e) for e in embeds]
    part_along = [(np.asarray(e, dtype=np.float64) * unit).sum(-1) for e in embeds]
    first = trace.get("hook_resid_pre", 0)
    residual = [row_norms(first)]
    cosine = [row_cosines(first, final, residual[0], final_norm)]
    before, after, step_cos, ln_mean, ln_std, ln_scale = ([] for _ in range(6))
    for layer in range(L):
        s = trace.get_layer(layer, _SITES, keep=False)
        norms = {site: row_norms(s[site]) for site in _SITES if not site.endswith("hook_scale")}
        for _part, x, f, y in STEP_SITES:
            before.append(norms[x])
            after.append(norms[y])
            step_cos.append(row_cosines(s[x], s[f], norms[x], norms[f]))
            part_sizes.append(norms[f])
            part_along.append((np.asarray(s[f], dtype=np.float64) * unit).sum(-1))
        for which, x in (("ln1", "hook_resid_pre"), ("ln2", "hook_resid_mid")):
            stats = stats_of(which, s[x], s[f"{which}.hook_scale"])
            ln_mean.append(stats.mean)
            ln_std.append(stats.std)
            ln_scale.append(stats.scale)
        post = norms["hook_resid_post"]
        residual.append(post)
        cosine.append(row_cosines(s["hook_resid_post"], final, post, final_norm))
        del s  # this block's arrays (a lazy Trace's recomputed halves) go here
    return LayerSummary(
        residual_norms=np.stack(residual),
        cosine_to_final=np.stack(cosine),
        part_sizes=np.stack(part_sizes),
        part_along_final=np.stack(part_along),
        step_before=np.stack(before),
        step_after=np.stack(after),
        step_cosine=np.stack(step_cos),
        ln_mean=np.stack(ln_mean),
        ln_std=np.stack(ln_std),
        ln_scale=np.stack(ln_scale),
    )


__all__ = ["LayerSummary", "layer_summary"]
