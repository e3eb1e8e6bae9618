"""Helpers shared by the tests: reading plotly's JSON, opening the app in AppTest, reference
Traces, and synthetic Traces of any shape (built from the table of activation sites)."""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
from streamlit.testing.v1 import AppTest

from engine.capture import run_with_trace
from engine.checkpoints import LoadedModel
from engine.config import GPTConfig
from engine.figures.common import plotly_text, unique_labels
from engine.names import SITE, act_name, symbol_sizes
from engine.trace import Trace

ROOT = Path(__file__).resolve().parent.parent


# --- plotly's JSON -------------------------------------------------------------------------------


def values(field: object) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly's typed array {"dtype", "bdata", "shape"}."""
    if isinstance(field, dict) and "bdata" in field:
        data = np.frombuffer(base64.b64decode(field["bdata"]), dtype=np.dtype(field["dtype"]))
        shape = field.get("shape")
        if shape:
            data = data.reshape([int(n) for n in str(shape).split(",")])
        return data.astype(float)
    return np.array(field, dtype=float)


def decode(value: object) -> object:
    """Plotly sends numpy arrays as {"dtype", "bdata" (base64), "shape"}; lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        if "shape" in value:
            arr = arr.reshape([int(n) for n in str(value["shape"]).split(",")])
        return arr
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def z_of(spec: dict, index: int = 0) -> np.ndarray:
    """The z values of trace `index` of a plotly spec, as float64."""
    return values(spec["data"][index]["z"])


# --- the app in AppTest --------------------------------------------------------------------------


def new_app(query: dict[str, str] | None = None, timeout: float = 60) -> AppTest:
    """AppTest on app.py (the home page) with these query parameters, not yet run."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at


def open_page(
    page: str, text: str, timeout: float = 60, sections: tuple[str, ...] = (), **query: str
) -> AppTest:
    """Run `page` ("pages/3_Attention.py", or "app.py" for the home page) on `text` with these
    query parameters, as a link would open it; fails the test if the page raised. `timeout`:
    seconds AppTest waits for one run. `sections`: keys of lazy sections
    (`ui.widgets.lazy_section`) to open, as a click on each would."""
    at = new_app({"text": text, **query}, timeout)
    if page != "app.py":
        at.switch_page(page)
    for key in sections:
        at.session_state[key] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def lazy_section_keys(path: str) -> list[str]:
    """The keys of a page's lazy sections (`ui.widgets.lazy_section(label, "key", draw)`), read
    from its source ("pages/3_Attention.py"), so that a section added later is covered too."""
    source = (ROOT / path).read_text(encoding="utf-8")
    return re.findall(r'lazy_section\(\s*.*?,\s*"([a-z_]+)",', source, flags=re.S)


def _valid_spec(raw: str) -> dict:
    """A chart's plotly JSON as a dict, checked by plotly's validators: `readable` builds the
    figure a page sends without validating it again, so a property plotly does not know would
    otherwise reach the browser unnoticed (plotly.js ignores it). Fails the test on one."""
    spec = json.loads(raw)
    try:
        go.Figure(spec)
    except ValueError as err:
        raise AssertionError(f"the page sent a figure plotly does not validate: {err}") from err
    return spec


def assert_validates_unchanged(fig: go.Figure) -> None:
    """A figure built without validation (`engine.figures.common.spec_figure`) is what plotly's
    validators make of it: none rejects a property and none changes a value (a named colour
    scale left as a name, say, which plotly.js draws with other colours)."""
    import plotly.io as pio

    validated = json.loads(pio.to_json(go.Figure(fig.to_dict())))
    assert validated == json.loads(pio.to_json(fig))


def chart(at: AppTest, key: str) -> dict:
    """The plotly spec of the chart drawn with `key` (pages give every chart a key), validated
    by plotly."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(key) or key in element.proto.id:
            return _valid_spec(element.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


def chart_list(at: AppTest) -> list[dict]:
    """Every plotly chart on the page, in order, as plotly JSON (arrays not decoded), each
    validated by plotly."""
    return [_valid_spec(c.proto.spec) for c in at.get("plotly_chart")]


def view_link(at: AppTest) -> str:
    """The address of the sidebar's link to this view (a Markdown link "[🔗 …](url)").
    Raises AssertionError when the sidebar has none."""
    for element in reversed(list(at.sidebar.markdown)):
        found = re.fullmatch(r"\[🔗 [^\]]+\]\((\S+)\)", element.value)
        if found:
            return found.group(1)
    raise AssertionError("no link to this view in the sidebar")


def unique_text(prefix: str = "The cat sat on the mat") -> str:
    """A text no other test has used: its Trace is not in the process-wide cache yet."""
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def charts(at: AppTest) -> dict[str, dict]:
    """Every plotly chart on the page by its key, as the JSON the browser receives (arrays
    decoded)."""
    return {c.key: decode(_valid_spec(c.proto.spec)) for c in at.get("plotly_chart")}


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The page's table that has `column` (AppTest does not expose dataframe keys)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a column {column!r}")


def streamlit_number(value: float) -> str:
    """The text Streamlit 1.67 writes for a float cell it formats itself (no Styler, no column
    format; its frontend's formatNumber): four decimals, or as many as a number under 1e-4
    needs, trailing zeros cut ("0.258" beside "0.1944"); "" for NaN and infinities."""
    if not math.isfinite(value):
        return ""
    decimals = 4 if value == 0 or abs(value) >= 1e-4 else -math.floor(math.log10(abs(value)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _display_values(frame: object) -> bytes:
    """A dataframe element's display values (Arrow IPC) when a Styler formatted it, else b""."""
    arrow = frame.proto.arrow_data  # type: ignore[attr-defined]
    return arrow.styler.display_values if arrow.HasField("styler") else b""


def unformatted_floats(frame: object) -> list[str]:
    """The float columns of a page's `st.dataframe` (an element of `at.dataframe`) that
    Streamlit formats itself (`streamlit_number`): no Styler and no column format."""
    if _display_values(frame):
        return []
    value = frame.value  # type: ignore[attr-defined]
    config = json.loads(frame.proto.columns or "{}")  # type: ignore[attr-defined]
    return [
        str(c)
        for c in value.columns
        if pd.api.types.is_float_dtype(value[c])
        and not config.get(str(c), {}).get("type_config", {}).get("format")
    ]


def shown_cells(frame: object) -> pd.DataFrame:
    """What the browser shows of a page's `st.dataframe` (an element of `at.dataframe`), every
    cell as text: a Styler's display values as Streamlit sends them, else the cells, float ones
    as Streamlit writes them itself (`streamlit_number`)."""
    display = _display_values(frame)
    value = frame.value  # type: ignore[attr-defined]
    if display:
        written = pa.ipc.open_stream(display).read_pandas().astype(str)
        # Streamlit's grid draws a missing cell (NaN, None) as "None" whatever the Styler wrote
        # for it (streamlit/streamlit#11123; seen in Chromium): so does this copy
        missing = value.isna().to_numpy()
        if missing.shape == written.shape and missing.any():
            written = written.mask(missing, "None")
        return written
    out = pd.DataFrame(index=value.index)
    for column in value.columns:
        cells = value[column]
        if pd.api.types.is_float_dtype(cells):
            out[column] = [streamlit_number(float(v)) for v in cells]
        else:
            out[column] = [str(v) for v in cells]
    return out


# a number in a table cell: digits with thousands separators, decimals, a percent sign
_CELL_NUMBER = re.compile(r"(?<![\w.])[-−+]?\d[\d,]*(?:\.(\d+))?(%?)")


def decimal_formats(cells: list[str]) -> dict[str, set[int]]:
    """The numbers of decimals written in `cells`, by kind: "decimal" (3.142) and "percent"
    (12.5%); whole numbers (counts, positions, ids) are left out."""
    kinds: dict[str, set[int]] = {"decimal": set(), "percent": set()}
    for cell in cells:
        for number in _CELL_NUMBER.finditer(str(cell)):
            decimals, percent = number.group(1), number.group(2)
            if percent:
                kinds["percent"].add(len(decimals or ""))
            elif decimals:
                kinds["decimal"].add(len(decimals))
    return kinds


def reference_trace(loaded: LoadedModel, text: str) -> Trace:
    """The Trace the app computes for `text` (tests' tiny model = the app's tiny "bundled")."""
    return run_with_trace(loaded.model, loaded.tokenizer, text)


@dataclass(frozen=True)
class PageText:
    """The text a page-test module opens its pages on, and that text's reference Trace."""

    text: str

    def open(
        self, page: str, text: str | None = None, sections: tuple[str, ...] = (), **query: str
    ) -> AppTest:
        """`open_page` on this text (or on `text`), with these lazy sections open."""
        return open_page(page, self.text if text is None else text, sections=sections, **query)

    def trace(self, loaded: LoadedModel, text: str | None = None) -> Trace:
        """`reference_trace` of this text (or of `text`)."""
        return reference_trace(loaded, self.text if text is None else text)


# English with Chinese (characters split into byte tokens), and plain English with repeats.
MIXED = PageText("The cat sat on the mat. 你好，世界! The cat sat")
PLAIN = PageText("The cat sat on the mat. The cat sat on the")


def labels_of(trace: Trace, lo: int = 0, hi: int | None = None) -> list[str]:
    """The token labels a figure draws for `trace` (unique, escaped), positions lo..hi."""
    return [plotly_text(s) for s in unique_labels(trace.token_strs)][lo:hi]


# --- synthetic Traces ----------------------------------------------------------------------------

# GPT-2 small's shape with a small vocabulary: figure sizes at GPT-2's width and depth.
GPT2_SHAPE = GPTConfig(n_layer=12, n_head=12, d_model=768, n_ctx=1024, vocab_size=1000)


def synthetic_trace(T: int, config: GPTConfig, sites: tuple[str, ...], seed: int = 0) -> Trace:
    """A Trace of random arrays with the real shapes (only for layout and size checks): the
    block `sites` of every layer, the embeddings when asked for, logits, and ln_final's scale
    with ln1's. Shapes come from engine.names (the one table of activation sites)."""
    rng = np.random.default_rng(seed)
    sizes = symbol_sizes(config, T)

    def draw(site: str) -> np.ndarray:
        return rng.standard_normal(SITE[site].dims(sizes)).astype(np.float32)

    acts = {"logits": draw("logits")}
    for layer in range(config.n_layer):
        for site in sites:
            if site.startswith("hook_") and "embed" in site:
                continue
            acts[act_name(site, layer)] = draw(site)
    for name in ("hook_embed", "hook_pos_embed"):
        if name in sites:
            acts[name] = draw(name)
    if "ln1.hook_scale" in sites:
        acts["ln_final.hook_scale"] = draw("ln_final.hook_scale")
    return Trace(
        prompt="x" * T,
        token_ids=np.arange(T) % 200,
        token_strs=tuple(f"t{i % 7}" for i in range(T)),
        config=config,
        acts=acts,
    )


def gpt2_bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters (OpenAI's encoder.py `bytes_to_unicode`),
    written out here independently of engine.tokenizer, as a reference for its tests. Its
    values, in order, are the characters of ids 0-255 in GPT-2's vocab.json."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def in_boxes(node: object, box: int | None = None) -> list[tuple[object, int | None]]:
    """Every element under `node` of an AppTest tree, with the pixel width of the nearest
    container around it that has one (`st.container(width=...)`; None: none has)."""
    proto = getattr(node, "proto", None)
    config = getattr(proto, "width_config", None)
    if config is not None and config.WhichOneof("width_spec") == "pixel_width":
        box = config.pixel_width
    children = getattr(node, "children", None)
    if not isinstance(children, dict):
        return [(node, box)]
    return [found for child in children.values() for found in in_boxes(child, box)]
