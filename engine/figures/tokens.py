"""Stage 1, input and tokens: the text as token chips, a token table, bytes per token and the
byte-pair-encoding (BPE) steps of one word. Pure builders: arrays and labels in, plotly Figures,
HTML or pandas tables for display out; the counts come from `engine.lens.tokens`.
"""

from __future__ import annotations

import html
import unicodedata

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.figures.common import PALETTE, plotly_text, spec_figure, token_labels
from engine.figures.text import _
from engine.lens.tokens import group_of_position
from engine.tokenizer import PreTokenSteps, TokenGroup, display_token

# Light versions of the palette for chip backgrounds (dark text stays readable on them).
CHIP_COLOURS = (
    "#cfe0f3",
    "#fde0c2",
    "#d3ecd0",
    "#f8d0d0",
    "#d3ecea",
    "#fbefc0",
    "#eadaf0",
    "#ffe0e4",
    "#e8dcd3",
    "#e6e3e1",
)


def chip_colour(token_id: int) -> str:
    """A chip's background: the same token id always gets the same colour, so repeats show."""
    return CHIP_COLOURS[token_id % len(CHIP_COLOURS)]


def token_chips_html(
    token_strs: list[str] | tuple[str, ...],
    token_ids: list[int] | np.ndarray,
    groups: list[TokenGroup],
    selected: int | None = None,
) -> str:
    """The text as coloured chips, one per token (equal ids share a colour), with its id
    underneath. Tokens that only together form a character (a Chinese character or an emoji
    split into byte tokens) sit in one bracket with that character above them. Every user
    string is HTML-escaped."""
    where = _("position {pos}, id {id}")
    parts = [
        '<div style="display:flex;flex-wrap:wrap;gap:6px 4px;align-items:flex-end;'
        'line-height:1.2;font-size:1.15rem">'
    ]
    for g_index, group in enumerate(groups):
        chips = []
        for pos in range(group.first, group.last + 1):
            colour = chip_colour(int(token_ids[pos]))
            border = "3px solid #d62728" if pos == selected else "1px solid #8a8a8a"
            chips.append(
                f'<span title="{html.escape(where.format(pos=pos, id=int(token_ids[pos])))}" '
                f'style="display:inline-flex;flex-direction:column;align-items:center;'
                f"background:{colour};border:{border};border-radius:6px;padding:2px 6px;"
                f'font-family:monospace;white-space:pre">'
                f"<span>{html.escape(token_strs[pos])}</span>"
                f'<span style="font-size:0.75em;color:#444">{int(token_ids[pos])}</span></span>'
            )
        if group.last > group.first:
            parts.append(
                '<span style="display:inline-flex;flex-direction:column;align-items:center;'
                'border:2px dashed #555;border-radius:8px;padding:2px 4px;gap:2px">'
                f'<span style="font-size:1.2em" title="group {g_index}">'
                f"{html.escape(group.text)}</span>"
                f'<span style="display:inline-flex;gap:3px">{"".join(chips)}</span></span>'
            )
        else:
            parts.extend(chips)
    parts.append("</div>")
    return "".join(parts)


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def token_table(
    token_ids: list[int] | np.ndarray,
    token_strs: list[str] | tuple[str, ...],
    token_bytes: list[bytes],
    groups: list[TokenGroup],
) -> pd.DataFrame:
    """One row per token: position, id, token as displayed, its bytes, the characters it
    covers (a token that holds only part of a character names the character and its share)."""
    owner = group_of_position(groups, len(token_ids))
    rows = []
    for pos, (tid, shown, data) in enumerate(zip(token_ids, token_strs, token_bytes, strict=True)):
        group = groups[owner[pos]]
        if group.first == group.last:
            covers = display_token(group.text.encode("utf-8", errors="surrogatepass"))
        else:
            group_bytes = sum(len(token_bytes[p]) for p in range(group.first, group.last + 1))
            covers = _("part of “{text}” (tokens {first}–{last}, {n} of {total} bytes)").format(
                text=group.text,
                first=group.first,
                last=group.last,
                n=len(data),
                total=group_bytes,
            )
        rows.append(
            {
                "position": pos,
                "id": int(tid),
                "token": shown,
                "bytes": _hex(data),
                "n bytes": len(data),
                "characters covered": covers,
            }
        )
    headers = {
        "position": _("position"),
        "id": "id",
        "token": _("token"),
        "bytes": _("bytes"),
        "n bytes": _("n bytes"),
        "characters covered": _("characters covered"),
    }
    return pd.DataFrame(rows, columns=list(headers)).rename(columns=headers)


def split_characters(groups: list[TokenGroup]) -> pd.DataFrame:
    """The characters that span several tokens: character, tokens, Unicode name."""
    rows = []
    for group in groups:
        if group.last > group.first:
            name = ", ".join(unicodedata.name(ch, f"U+{ord(ch):04X}") for ch in group.text)
            rows.append(
                {
                    "characters": group.text,
                    "tokens": f"{group.first}–{group.last}",
                    "number of tokens": group.last - group.first + 1,
                    "Unicode name": name,
                }
            )
    headers = {
        "characters": _("characters"),
        "tokens": _("tokens"),
        "number of tokens": _("number of tokens"),
        "Unicode name": _("Unicode name"),
    }
    return pd.DataFrame(rows, columns=list(headers)).rename(columns=headers)


def bytes_per_token_figure(
    token_strs: list[str] | tuple[str, ...], token_bytes: list[bytes]
) -> go.Figure:
    """Bars: how many UTF-8 bytes each token stands for. Written as one dict and built once
    (`spec_figure`): validating a colour per bar took about 80 ms at 1,024 tokens."""
    counts = [len(b) for b in token_bytes]
    bar = {
        "type": "bar",
        "x": token_labels(token_strs),
        "y": counts,
        "marker": {"color": [PALETTE[i % len(PALETTE)] for i in range(len(counts))]},
        "hovertemplate": _("token %{x}<br>%{y} bytes<extra></extra>"),
    }
    layout = {
        "xaxis": {
            "title": {"text": _("token (position:text)")},
            "type": "category",
            "tickangle": -60,
        },
        "yaxis": {"title": {"text": _("UTF-8 bytes")}, "dtick": 1},
    }
    return spec_figure({"data": [bar], "layout": layout}, _("Bytes per token"), 360)


# Pages draw merge steps for pre-tokens up to this many bytes: a row per merge and a box per
# part, so a pasted 240-byte word would be 130 rows, 23,000 boxes and a 6,000-pixel figure.
BPE_FIGURE_MAX_BYTES = 64


def bpe_rows(steps: PreTokenSteps) -> list[tuple[bytes, ...]]:
    """The parts of one pre-token at every stage: single bytes first, then after each merge."""
    return [steps.bytes_, *steps.merges]


def bpe_steps_figure(steps: PreTokenSteps, rank_of: dict[bytes, int] | None = None) -> go.Figure:
    """Byte-pair encoding of one word, top to bottom: its bytes, then one row per merge; each
    part is a box as wide as its bytes, labelled with the text it stands for. The last row is
    the word's tokens. Written as one dict and built once (`spec_figure`)."""
    rows = bpe_rows(steps)
    xs: list[int] = []
    bases: list[int] = []
    ys: list[str] = []
    texts: list[str] = []
    hovers: list[str] = []
    colours: list[str] = []
    bytes_word = _("bytes")  # translated once, not once per part
    row_names = [bytes_word] + [_("merge {k}").format(k=k) for k in range(1, len(rows))]
    for r, parts in enumerate(rows):
        start = 0
        for k, part in enumerate(parts):
            xs.append(len(part))
            bases.append(start)
            ys.append(row_names[r])
            label = plotly_text(display_token(part))
            texts.append(label)
            rank = "" if rank_of is None or part not in rank_of else f"<br>id {rank_of[part]}"
            hovers.append(f"{label}<br>{bytes_word} {_hex(part)}{rank}")
            colours.append(PALETTE[k % len(PALETTE)] if r == len(rows) - 1 else "#BAB0AC")
            start += len(part)
    bar = {
        "type": "bar",
        "x": xs,
        "base": bases,
        "y": ys,
        "orientation": "h",
        "text": texts,
        "textposition": "inside",
        "insidetextanchor": "middle",
        "hovertext": hovers,
        "hoverinfo": "text",
        "marker": {"color": colours, "line": {"color": "white", "width": 3}},
    }
    layout = {
        "yaxis": {"autorange": "reversed", "type": "category", "title": {"text": ""}},
        "xaxis": {"title": {"text": _("bytes of the word")}, "dtick": 1},
        "showlegend": False,
        "uniformtext": {"minsize": 12, "mode": "show"},
    }
    title = _("BPE steps for “{word}”").format(
        word=plotly_text(display_token(steps.text.encode("utf-8")))
    )
    return spec_figure({"data": [bar], "layout": layout}, title, max(260, 70 + 48 * len(rows)))


__all__ = [
    "BPE_FIGURE_MAX_BYTES",
    "bpe_rows",
    "bpe_steps_figure",
    "bytes_per_token_figure",
    "chip_colour",
    "split_characters",
    "token_chips_html",
    "token_table",
]
