"""A pseudo-locale: every literal stretch of every catalogue message wrapped in ⟦ ⟧ (placeholders
left outside), so that text a clinician sees outside the markers is text that never went
through the catalogue, whether written by the cards or filled into one of their messages.

What may remain once the markers are removed: data (numbers, dates, units, codes, FHIR
references and element names, the study's citation, the model version, what the EHR sent) and,
until they carry a ``fhir_mappers.notes.Note`` too, the FHIR client's fetch errors. The mappers'
notes, the prefetch's reasons and the models' wording go through the catalogue. Anything else is
a string that escaped extraction.
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
_PLACEHOLDER = re.compile(r"(%\(\w+\)s)")
_INNERMOST = re.compile(r"⟦[^⟦⟧]*⟧")
# Data: FHIR references and ids, codes, DOIs, URLs, versions, dates, numbers with their units.
_DATA = re.compile(
    r"https?://\S+|doi:\S+|\b10\.\d{4,}/\S+|\b[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+|\b[a-z0-9]+(?:-[a-z0-9]+)+\b"
    r"|\b[a-z]+(?:[A-Z][a-z0-9]*)+\b"  # FHIR element names: effectiveDateTime, draftOrders
    r"|\b\d[\d.,+a-f]*\b|ng/mL|IU/mL|U/L|\bLOINC\b|\bSNOMED CT\b|\bRxNorm\b|\bATC\b|\bICD-10(?:-CM)?\b"
)
_WORDS = re.compile(r"[A-Za-z][A-Za-z']+(?:[ \-][A-Za-z][A-Za-z']+)*")
# What may still reach a card in English: why a fetch failed (FetchError's reason, filled into a
# prefetch Note), until it carries a fhir_mappers.notes.Note too. The mappers, the prefetch and
# models/ are not here: their notes go through the catalogue (cards.notes.say).
LOWER_LAYERS = [ROOT / "cds_service" / name for name in ("fhir_client.py", "ssrf.py")]


def catalogue() -> Translations:
    with (i18n.TRANSLATIONS_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="en")
    for message in catalog:
        if isinstance(message.id, str) and message.id:
            message.string = wrap(message.id)
        elif message.id:  # a plural: each form wrapped
            message.string = tuple(wrap(form) for form in message.id)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def wrap(message: str) -> str:
    """Each literal stretch of ``message`` in markers, its placeholders left outside them: what a
    placeholder is filled with is checked in its own right (a lower layer's English would hide
    inside a marker that spans the whole message)."""
    return "".join(
        part if _PLACEHOLDER.fullmatch(part) else f"⟦{part}⟧" for part in _PLACEHOLDER.split(message) if part
    )


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
        text = _INNERMOST.sub("\n", text)  # a line break: the words either side are not one run
    text = _DATA.sub(" ", text)
    lower = _lower_layer_text()
    found = []
    for run in _WORDS.findall(text):
        run = run.strip("'")  # a quoted display: 'Liver transplant status'
        words = run.split()
        if len(words) == 1 and len(run) <= 3:
            continue  # an abbreviation: AFP, ALT, CI
        if any(run in data for data in allowed) or _in_lower_layers(words[:3], lower):
            continue
        if any(template.fullmatch(run) for template in _lower_layer_templates()):
            continue
        found.append(run)
    return found


def _in_lower_layers(words: list[str], lower: str) -> bool:
    """The words, in order, in the lower layers' source, each possibly an f-string field there."""
    pattern = r"[\s\-]+".join(rf"(?:{re.escape(word)}|\{{[^}}]*\}})" for word in words)
    return re.search(pattern, lower) is not None


_F_STRING = re.compile(r'f"([^"\n]*\{[^"\n]*)"')


def _lower_layer_templates() -> list[re.Pattern[str]]:
    """The lower layers' f-strings as patterns, a field standing for any words ('no {label}
    found' is 'no total bilirubin found'); those with fewer than two literal words match nothing."""
    if not _TEMPLATES:
        for body in _F_STRING.findall(_lower_layer_text()):
            parts = [part.strip(" :;,.()") for part in re.split(r"\{[^}]*\}", body)]
            if sum(len(re.findall(r"[A-Za-z]{2,}", part)) for part in parts) >= 2:
                _TEMPLATES.append(re.compile(r"[A-Za-z' \-]+".join(re.escape(part) for part in parts).strip()))
    return _TEMPLATES


_TEMPLATES: list[re.Pattern[str]] = []


_LOWER: list[str] = []


def _lower_layer_text() -> str:
    if not _LOWER:
        _LOWER.append("\n".join(path.read_text(encoding="utf-8") for path in LOWER_LAYERS))
    return _LOWER[0]
