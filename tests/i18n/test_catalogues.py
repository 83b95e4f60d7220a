"""Issue 28: the message catalogues are complete, consistent with the code, and name every drug.

A message the code gains without a translation, a translation that drops a placeholder, or a
drug the terminology gains without a Chinese generic name fails here, not in front of a clinician.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from cards import i18n, names
from fhir_mappers.terminology import load_terminology

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # ideographs, CJK and full-width punctuation


def catalogue(locale: str):
    with (i18n.TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=locale)


def extracted_ids() -> set[str]:
    """What `pybabel extract -F babel.cfg -k N_` finds in the code and templates today."""
    config = ROOT / "babel.cfg"
    from babel.messages.frontend import parse_mapping_cfg

    method_map, options_map = parse_mapping_cfg(io.StringIO(config.read_text(encoding="utf-8")))
    keywords = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2), "Note": (2,)}
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }


def test_the_catalogues_hold_every_message_the_code_and_templates_use():
    in_code = extracted_ids()
    assert len(in_code) > 200
    for locale in i18n.LOCALES:
        ids = {m.id for m in catalogue(locale) if m.id}
        assert not in_code - ids, f"{locale}: run pybabel extract/update (babel.cfg): {sorted(in_code - ids)[:5]}"


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_message_is_translated_with_its_placeholders(locale):
    messages = [m for m in catalogue(locale) if m.id]
    untranslated = [m.id for m in messages if not m.string or m.fuzzy]
    assert not untranslated, f"{locale}: {len(untranslated)} untranslated, e.g. {untranslated[:3]}"
    for message in messages:
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), message.id
        assert message.string.count("**") == message.id.count("**"), message.id  # Markdown emphasis kept
        assert message.string.count("|") == message.id.count("|"), message.id  # table cells kept


def test_chinese_is_chinese_and_english_is_the_source():
    for message in catalogue("en"):
        assert not message.id or message.string == message.id
    # Drug names, clinical terms and sentences alike carry Chinese; abbreviations may stay Latin.
    latin_only = {m.id for m in catalogue("zh_CN") if m.id and not CJK.search(m.string)}
    assert latin_only <= {"AFP", "ALT"}, latin_only


def test_every_drug_the_terminology_knows_has_a_chinese_generic_name():
    drugs = load_terminology(None).drugs
    assert set(drugs) <= set(names.DRUGS), set(drugs) - set(names.DRUGS)
    with i18n.using("zh_CN"):
        chinese = {drug: names.drug_name(drug) for drug in drugs}
    assert chinese["sorafenib"] == "索拉非尼" and chinese["sintilimab"] == "信迪利单抗"
    assert all(CJK.search(name) for name in chinese.values()), chinese


def test_the_glossary_agrees_with_the_catalogue():
    """What a pharmacist reviews is what the service shows: each glossary row's Chinese term is
    the catalogue's translation, or appears in the catalogue's Chinese text."""
    rows = list(csv.DictReader((ROOT / "docs" / "glossary-zh-CN.csv").open(encoding="utf-8")))
    assert {"english", "chinese", "where_used", "status"} <= set(rows[0])
    zh = {m.id: m.string for m in catalogue("zh_CN") if m.id}
    all_chinese = "\n".join(zh.values())
    for row in rows:
        assert row["status"] == "to be reviewed by a pharmacist", row
        assert zh.get(row["english"], row["chinese"]) == row["chinese"], row
        assert row["chinese"] in all_chinese, row
    assert {row["english"] for row in rows} >= set(names.DRUGS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("zh-CN", "zh_CN"), ("zh_cn", "zh_CN"), ("EN", "en"), ("fr", None), ("", None)],
)
def test_locale_names(value, expected):
    if expected is None:
        with pytest.raises(i18n.UnsupportedLocale):
            i18n.check_locale(value)
    else:
        assert i18n.check_locale(value) == expected


def test_numbers_and_dates_follow_the_locale():
    from datetime import date

    with i18n.using("zh_CN"):
        assert (i18n.pct(0.425, 1), i18n.day(date(2026, 11, 20))) == ("42.5%", "2026年11月20日")
    with i18n.using("en"):
        assert (i18n.pct(0.425, 1), i18n.day(date(2026, 11, 20))) == ("42.5%", "2026-11-20")
    assert i18n.current_locale() == "en"  # the block ends, the default is back
