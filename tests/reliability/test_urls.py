"""Hostile links (query parameters) in AppTest, tiny test model: out-of-range, negative and
non-numeric layer/head/pos, unknown models, path traversal and absolute paths, a huge text.
Each is clamped or refused with a notice, never an exception, and no file outside the offered
models is read."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.checkpoints import CheckpointError, random_model, save_checkpoint
from engine.config import PRESETS
from tests import support
from ui.cache import MODEL_LOADS, load_model
from ui.models import model_key, model_offered
from ui.settings import MAX_TEXT_CHARS
from ui.stages import STAGES
from ui.text import DEFAULT_TEXT, text_fits_url

# The app on the tiny test model with no operator settings (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("tiny_app")

ROOT = Path(__file__).resolve().parents[2]
TINY = PRESETS["tiny"]
TEXT = "The cat sat on the mat and looked at the dog."
PAGES = ["app.py", *[s.path for s in STAGES if (ROOT / s.path).is_file()]]


open_link = partial(support.open_page, text=TEXT, timeout=120)


def warnings(at: AppTest) -> str:
    return "\n".join(w.value for w in at.warning)


def n_tokens(text: str = TEXT) -> int:
    return len(load_model("bundled").tokenizer.encode(text))


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "shown", "notice"),
    [
        ("layer", "99", TINY.n_layer - 1, "asks for layer 99, but this model has layers 0 to 1"),
        ("layer", "-3", 0, "asks for layer -3, but this model has layers 0 to 1"),
        ("layer", "10" * 20, TINY.n_layer - 1, "asks for layer 1,010,101"),
        ("head", "7", TINY.n_head - 1, "asks for head 7, but each layer has heads 0 to 1"),
        ("head", "-1", 0, "asks for head -1, but each layer has heads 0 to 1"),
        ("pos", "-1", 0, "asks for token position -1, but the text has positions 0 to"),
        ("pos", "100000", None, "asks for token position 100,000, but the text has positions"),
    ],
)
def test_out_of_range_numbers_are_clamped_with_a_notice(
    name: str, raw: str, shown: int | None, notice: str
) -> None:
    at = open_link("pages/3_Attention.py", **{name: raw})
    last = n_tokens() - 1
    expected = last if shown is None else shown
    assert at.session_state[name] == expected
    assert notice in warnings(at)
    assert f"showing {'token position' if name == 'pos' else name} {expected}." in warnings(at)
    assert at.query_params[name] in (str(expected), [str(expected)])  # the URL is corrected
    assert at.session_state["text"] == TEXT
    assert at.get("plotly_chart")  # the page still draws


@pytest.mark.parametrize("raw", ["abc", "", "1.5", "1e3", "0x1", "9" * 5000, "<script>", "${x}"])
@pytest.mark.parametrize("name", ["layer", "head", "pos"])
def test_non_numeric_numbers_are_ignored_with_a_notice(name: str, raw: str) -> None:
    at = open_link("pages/3_Attention.py", **{name: raw})
    notice = [w.value for w in at.warning if f"The link's {name}=" in w.value]
    assert notice and notice[0].endswith("is not a whole number; ignored."), warnings(at)
    assert len(notice[0]) < 200  # a 5,000-digit value is quoted short
    default = {"layer": 0, "head": 0, "pos": n_tokens() - 1}[name]
    assert at.session_state[name] == default
    assert at.get("plotly_chart")


def test_a_4000_digit_layer_is_clamped_and_quoted_short() -> None:
    at = open_link("pages/3_Attention.py", layer="9" * 4000)  # still an int for Python
    assert at.session_state["layer"] == TINY.n_layer - 1
    notice = [w.value for w in at.warning if "asks for layer 9,999,999" in w.value]
    assert len(notice) == 1 and len(notice[0]) < 200, warnings(at)


def test_a_valid_link_gives_no_notice() -> None:
    at = open_link("pages/3_Attention.py", layer="1", head="1", pos="2")
    assert not at.warning and not at.error
    assert (at.session_state["layer"], at.session_state["head"], at.session_state["pos"]) == (
        1,
        1,
        2,
    )


# --- models ---------------------------------------------------------------------------------


@pytest.fixture
def model_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A models folder with one checkpoint, and a valid checkpoint beside it (outside it)."""
    models, outside = tmp_path / "models", tmp_path / "secret"
    save_checkpoint(random_model(TINY, seed=3), models / "mini", n_ranks=TINY.vocab_size - 1)
    save_checkpoint(random_model(TINY, seed=4), outside, n_ranks=TINY.vocab_size - 1)
    (models / "notes").mkdir()  # a folder without config.json is not a model
    monkeypatch.setenv("INSIDE_GPT_MODELS_DIR", str(models))
    return models, outside


def _loads_of(model_id: str) -> int:
    return MODEL_LOADS[model_key(model_id)]


@pytest.mark.parametrize(
    "raw",
    [
        "unknown",
        "../secret",
        "mini/../../secret",
        "./mini",
        "..",
        ".",
        "notes",
        "SECRET",
        "/etc",
        "/etc/passwd",
        "C:\\Windows\\System32",
        "\\\\server\\share",
        "mini\x00",
        "~/.ssh",
        "<img src=x onerror=alert(1)>",
        "x" * 100_000,
    ],
)
def test_a_model_the_server_does_not_offer_is_refused_before_reading_anything(
    raw: str, model_dirs: tuple[Path, Path]
) -> None:
    _, outside = model_dirs
    loads_before = _loads_of(raw), _loads_of(str(outside))
    at = open_link("pages/1_Tokens.py", model=raw)
    assert at.session_state["model_id"] == "bundled"
    notice = [w.value for w in at.warning if "which is not available here" in w.value]
    assert len(notice) == 1 and len(notice[0]) < 300, warnings(at)
    assert (_loads_of(raw), _loads_of(str(outside))) == loads_before  # nothing was loaded
    assert at.query_params["model"] in ("bundled", ["bundled"])
    assert at.session_state["text"] == TEXT
    assert at.get("plotly_chart")


def test_the_absolute_path_of_a_real_checkpoint_is_refused_unless_paths_are_allowed(
    model_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, outside = model_dirs
    at = open_link("pages/1_Tokens.py", model=str(outside))
    assert at.session_state["model_id"] == "bundled"
    assert _loads_of(str(outside)) == 0
    assert not model_offered(str(outside))
    monkeypatch.setenv("INSIDE_GPT_ALLOW_PATHS", "1")  # the operator's choice
    at = open_link("pages/1_Tokens.py", model=str(outside))
    assert at.session_state["model_id"] == str(outside)
    assert not at.error
    # relative paths stay refused: the path box takes absolute paths only
    assert not model_offered("../secret")


def test_a_listed_model_in_a_link_is_used(model_dirs: tuple[Path, Path]) -> None:
    at = open_link("pages/2_Embeddings.py", model="mini")
    assert at.session_state["model_id"] == "mini"
    assert not at.warning and not at.error


def test_load_model_itself_refuses_names_outside_the_list(model_dirs: tuple[Path, Path]) -> None:
    """Defence in depth: session state set by any route still cannot load an unlisted path."""
    for raw in ("../secret", "mini/../../secret", "/etc"):
        with pytest.raises(CheckpointError, match="not one of the models this server offers"):
            load_model(raw)
    at = open_link("pages/1_Tokens.py")
    at.session_state["model_id"] = "../secret"
    at.run()
    assert not at.exception
    assert any("not one of the models this server offers" in e.value for e in at.error)
    assert at.session_state["model_id"] == "bundled"
    assert at.get("plotly_chart")


# --- text -----------------------------------------------------------------------------------


def test_a_huge_text_in_a_link_is_cut_with_a_notice_and_not_written_back() -> None:
    huge = "All the world's a stage. " * 8_000  # 200,000 characters, 250,000 URL-encoded
    at = open_link("pages/1_Tokens.py", text=huge)
    kept = huge[:MAX_TEXT_CHARS]
    assert at.session_state["text"] == kept
    assert at.text_area(key="_w_text").value == kept
    assert f"Your text has {len(huge):,} characters" in warnings(at)
    assert "text" not in at.query_params  # too long for an address: links carry the view only
    assert any("too long for the page address" in c.value for c in at.sidebar.get("caption"))
    assert all(len(pl.proto.query_string) < 1000 for pl in at.get("page_link"))


def test_a_link_beyond_streamlits_own_limit_opens_the_defaults() -> None:
    """Streamlit drops a query string over 524,288 characters as a whole: the app opens with
    its defaults, without an exception (and cannot tell the visitor why; documented in the
    README's Reliability section, like the 8 KB request-line limit of a proxy such as nginx)."""
    at = open_link("pages/1_Tokens.py", text="x" * 600_000, layer="1")
    assert at.session_state["text"] == DEFAULT_TEXT
    assert at.session_state["layer"] == 0
    assert not at.error


def test_a_text_that_fits_an_address_is_written_back() -> None:
    text = "你好" * 150  # 1,800 URL-encoded characters
    assert text_fits_url(text)
    assert not text_fits_url("你好" * 300)
    at = open_link("pages/1_Tokens.py", text=text)
    assert at.query_params["text"] in (text, [text])
    assert not at.sidebar.get("caption") or not any(
        "too long for the page address" in c.value for c in at.sidebar.get("caption")
    )


def test_unknown_and_hostile_extra_parameters_are_dropped() -> None:
    at = open_link("pages/1_Tokens.py", foo="<script>alert(1)</script>", embed_x="1")
    assert "foo" not in at.query_params and "embed_x" not in at.query_params
    assert not at.warning


def test_a_huge_hostile_open_value_is_quoted_short_and_opens_only_real_sections() -> None:
    raw = "steps," + "<img src=x onerror=alert(1)>,**b**,$x$," * 2_000 + "numpy"  # 78,000 chars
    at = open_link("pages/3_Attention.py", open=raw)
    assert not at.exception and not at.error
    notice = [w.value for w in at.warning if "asks to open the section" in w.value]
    assert len(notice) == 1 and len(notice[0]) < 300, warnings(at)
    assert "\\<img" in notice[0] and "<img" not in notice[0].replace("\\<img", "")  # escaped
    # the value is read up to 2,000 characters: "steps" is opened, "numpy" (at the end) is not
    assert at.session_state["attention_sec_steps"] is True
    assert at.session_state["attention_sec_numpy"] is False
    params = at.query_params
    assert params["open"] in ("steps", ["steps"])


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_survives_a_fully_hostile_link(page: str) -> None:
    huge = "<img src=x onerror=alert(1)> $x$ **b** " * 2_000  # 78,000 characters
    at = open_link(page, text=huge, layer="99", head="-7", pos="abc", model="../../../etc/passwd")
    text = warnings(at)
    assert f"Your text has {len(huge):,} characters" in text
    assert "asks for layer 99" in text and "asks for head -7" in text
    assert "The link's pos='abc' is not a whole number" in text
    assert "which is not available here" in text
    assert at.session_state["text"] == huge[:MAX_TEXT_CHARS]
    assert at.session_state["model_id"] == "bundled"
    assert (at.session_state["layer"], at.session_state["head"]) == (TINY.n_layer - 1, 0)
