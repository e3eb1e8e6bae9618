"""The home page (app.py, ui.home): the flowchart and the model card's rows."""

from __future__ import annotations

import re

from engine.card import ModelCard
from engine.checkpoints import LoadedModel
from engine.config import PRESETS
from tests.support import ROOT, new_app
from ui.cache import load_model
from ui.home import model_card_rows
from ui.stages import STAGES


def test_home_page_shows_the_flowchart_and_the_model_card() -> None:
    at = new_app()
    at.run()
    assert not at.exception
    assert at.title[0].value.endswith("Inside GPT")
    pages_on_disk = [s for s in STAGES if (ROOT / s.path).is_file()]
    sidebar = [(pl.proto.page, pl.proto.label) for pl in at.sidebar.get("page_link")]
    assert sidebar[0][1] == "Inside GPT: home"
    assert [label for _, label in sidebar[1:]] == [s.label for s in pages_on_disk]
    assert [page for page, _ in sidebar[1:]] == [s.url_path for s in pages_on_disk]
    body = [(pl.proto.page, pl.proto.label) for pl in at.main.get("page_link")]
    assert ("Tokens", "Start the walk: 1 · Input & tokens") in body
    assert [page for page, _ in body[: len(pages_on_disk)]] != []
    for stage in pages_on_disk:  # hyphens non-breaking: "4 · Feed‑forward"
        label = f"{stage.number} · {stage.short_title}".replace("-", "\u2011")
        assert (stage.url_path, label) in body
    card = at.table[0].value
    values = dict(zip(card.iloc[:, 0], card.iloc[:, 1], strict=True))
    tiny = PRESETS["tiny"]
    assert values["Layers (blocks)"] == str(tiny.n_layer)
    assert values["Attention heads per layer"] == str(tiny.n_head)
    assert values["Width of the residual stream (d_model)"] == str(tiny.d_model)
    assert values["Context (longest text it reads)"] == f"{tiny.n_ctx} tokens"
    assert values["Parameters"] == f"{tiny.n_params():,}"
    assert values["Vocabulary"].startswith(f"{tiny.vocab_size:,} tokens")


def test_model_card_reads_the_validation_loss_from_the_card() -> None:
    loaded = load_model("bundled")
    with_loss = LoadedModel(
        name="x",
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        source="nowhere",
        card=ModelCard(trained_on="Shakespeare", val_loss=3.71234),
    )
    rows = dict(model_card_rows(with_loss))
    assert rows["Validation loss (nats per token)"] == "3.712"
    assert rows["Trained on"] == "Shakespeare"


def test_a_bilingual_card_gives_one_validation_loss_per_language() -> None:
    """The shipped model's card measured English and Chinese separately: the home page shows
    both numbers with their bigram baselines, read from config.json, not the mixed average."""
    import json

    from engine.checkpoints import BUNDLED_DIR, load_directory

    loaded = load_directory(BUNDLED_DIR, name="bundled")
    raw = json.loads((BUNDLED_DIR / "config.json").read_text(encoding="utf-8"))
    langs = raw["inside_gpt"]["bilingual_card"]["report"]["languages"]
    rows = dict(model_card_rows(loaded))
    assert "Validation loss (nats per token)" not in rows
    for lang, name in (("en", "English"), ("zh", "Chinese")):
        got = rows[f"Validation loss, {name} (nats per token)"]
        r = langs[lang]
        assert got == f"{r['val_loss']:.3f} (Kneser-Ney bigram: {r['bigram_kn']:.3f})"
        assert r["val_loss"] < r["bigram_kn"]


# Where a flowchart box's line may break: after a space (not a no-break space), a zero-width
# space or closing punctuation, before opening punctuation (`ui.home._FLOW_CSS`: keep-all).
_BREAKS = re.compile("(?<=[ \u200b，、。：；！？）」])|(?=[（「])")


def test_the_flowchart_breaks_lines_only_between_words() -> None:
    """A box's note is 108 px wide (FLOW_BOX_PX less its padding; 15.75 px type, measured in
    Chromium): 6 Chinese characters a line. In lecture mode at 1024 px the notes broke inside
    Chinese words ("把每个块的输/出加到残差流/上") and a label at its hyphen ("Feed-/forward").
    Labels have no breaking hyphen (en, zh); in Chinese every stretch of a note between two
    places a line may break fits a line, so the browser never has to break inside a word (the
    browser test tests/browser/test_narrow.py checks the lines it draws)."""
    from engine.figures.common import text_width_px
    from ui.home import FLOW_BOX_PX, _flow_label
    from ui.i18n import _, use_language

    line_px = FLOW_BOX_PX - 36
    assert line_px == 108
    for lang in ("en", "zh"):
        with use_language(lang):
            for stage in STAGES:
                assert "-" not in _flow_label(stage), _flow_label(stage)
                note = _(stage.note)
                if lang == "zh":
                    for stretch in _BREAKS.split(note):
                        assert text_width_px(stretch.strip(), 15.75) <= line_px, (note, stretch)


def test_the_shipped_models_training_data_is_shown_in_the_readers_language() -> None:
    """The shipped card writes what it was trained on in English (engine.__main__); the home
    page shows that text translated (a Chinese page had one English row), and any other
    card's text as the card writes it."""
    from engine.__main__ import BILINGUAL_TRAINED_ON
    from engine.checkpoints import BUNDLED_DIR, load_directory
    from ui.home import BUNDLED_TRAINED_ON
    from ui.i18n import use_language

    assert BUNDLED_TRAINED_ON == BILINGUAL_TRAINED_ON
    loaded = load_directory(BUNDLED_DIR, name="bundled")
    assert loaded.card is not None and loaded.card.trained_on == BILINGUAL_TRAINED_ON
    with use_language("zh"):
        rows = dict(model_card_rows(loaded))
        other = dict(
            model_card_rows(
                LoadedModel(
                    name="x",
                    model=loaded.model,
                    tokenizer=loaded.tokenizer,
                    source="nowhere",
                    card=ModelCard(trained_on="Shakespeare"),
                )
            )
        )
    assert rows["训练数据"].startswith("英文和中文：莎士比亚作品")
    assert other["训练数据"] == "Shakespeare"
