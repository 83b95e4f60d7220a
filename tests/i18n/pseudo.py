"""A pseudo-locale: every message of the catalogue wrapped in ⟦ ⟧, so that text a clinician sees
outside the markers is text that never went through the catalogue.

What may remain once the markers are removed: data (numbers, dates, units, codes, FHIR
references, the study's citation, the model version) and the wording of the layers below the
cards (models, fhir_mappers: screening reasons, mapping notes), which the cards quote as data.
Anything else is a string that escaped extraction.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from cards import i18n

ROOT = Path(__file__).resolve().parents[2]
_INNERMOST = re.compile(r"⟦[^⟦⟧]*⟧")
# Data: FHIR references and ids, codes, DOIs, URLs, versions, dates, numbers with their units.
_DATA = re.compile(
    r"https?://\S+|doi:\S+|\b10\.\d{4,}/\S+|\b[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+|\b[a-z0-9]+(?:-[a-z0-9]+)+\b"
    r"|\b\d[\d.,+a-f]*\b|ng/mL|IU/mL|U/L|\bLOINC\b|\bSNOMED CT\b|\bRxNorm\b|\bATC\b|\bICD-10(?:-CM)?\b"
)
_WORDS = re.compile(r"[A-Za-z][A-Za-z']+(?:[ \-][A-Za-z][A-Za-z']+)*")
# The layers below the cards, whose English the cards quote as data (not this task's catalogue).
LOWER_LAYERS = [
    *(ROOT / "models").rglob("*.py"),
    *(ROOT / "fhir_mappers").rglob("*.py"),
    ROOT / "hcc_evidence" / "lei-2025-sorafenib-resistance.json",
]
LOWER_LAYERS += [ROOT / "cds_service" / name for name in ("prefetch.py", "pipeline.py", "fhir_client.py", "ssrf.py")]


def catalogue() -> Translations:
    with (i18n.TRANSLATIONS_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="en")
    for message in catalog:
        if message.id:
            message.string = f"⟦{message.id}⟧"
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


@contextmanager
def pseudo_locale(monkeypatch) -> Iterator[None]:
    """Every locale answers with the pseudo catalogue (in every thread: the live servers' too)."""
    pseudo = catalogue()
    monkeypatch.setattr(i18n, "translations", lambda _locale: pseudo)
    yield


def escapes(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """English word runs outside the markers that are neither data (within one of ``allowed``: what
    the EHR sent, the citation) nor the lower layers' wording."""
    while _INNERMOST.search(text):
        text = _INNERMOST.sub(" ", text)
    text = _DATA.sub(" ", text)
    lower = _lower_layer_text()
    found = []
    for run in _WORDS.findall(text):
        words = run.split()
        if len(words) == 1 and len(run) <= 3:
            continue  # an abbreviation: AFP, ALT, CI
        if any(run in data for data in allowed) or _in_lower_layers(words[:3], lower):
            continue
        found.append(run)
    return found


def _in_lower_layers(words: list[str], lower: str) -> bool:
    """The words, in order, in the lower layers' source, each possibly an f-string field there."""
    pattern = r"[\s\-]+".join(rf"(?:{re.escape(word)}|\{{[^}}]*\}})" for word in words)
    return re.search(pattern, lower) is not None


_LOWER: list[str] = []


def _lower_layer_text() -> str:
    if not _LOWER:
        _LOWER.append("\n".join(path.read_text(encoding="utf-8") for path in LOWER_LAYERS))
    return _LOWER[0]
