"""A pseudo-locale: every literal stretch of every catalogue message wrapped in ⟦ ⟧ (placeholders
left outside), so that text a clinician sees outside the markers is text that never went
through the catalogue, whether written by the cards or filled into one of their messages.

What may remain once the markers are removed: data (numbers, dates, units, codes, FHIR
references and element names, the study's citation, the model version, what the EHR sent). The
mappers' notes, the prefetch's reasons, the FHIR client's fetch errors and the models' wording go
through the catalogue. Anything else is a string that escaped extraction.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from cards import i18n

_PLACEHOLDER = re.compile(r"(%\(\w+\)s)")
_INNERMOST = re.compile(r"⟦[^⟦⟧]*⟧")
# Data: FHIR references and ids, codes, DOIs, URLs, versions, dates, numbers with their units.
_DATA = re.compile(
    r"https?://\S+|doi:\S+|\b10\.\d{4,}/\S+|\b[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+|\b[a-z0-9]+(?:-[a-z0-9]+)+\b"
    r"|\b[a-z]+(?:[A-Z][a-z0-9]*)+\b"  # FHIR element names: effectiveDateTime, draftOrders
    r"|\b[0-9a-f]{40,64}\b"  # digests: an artifact's sha256
    r"|\bJSON\b|\bMarkdown\b"  # format names, as the model card's download links give them
    r"|\b\d[\d.,+a-f]*\b|ng/mL|IU/mL|U/L|\bLOINC\b|\bSNOMED CT\b|\bRxNorm\b|\bATC\b|\bICD-10(?:-CM)?\b"
)
_WORDS = re.compile(r"[A-Za-z][A-Za-z']+(?:[ \-][A-Za-z][A-Za-z']+)*")


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
    """English word runs outside the markers that are not data (within one of ``allowed``: what
    the EHR sent, the citation)."""
    while _INNERMOST.search(text):
        text = _INNERMOST.sub("\n", text)  # a line break: the words either side are not one run
    text = _DATA.sub(" ", text)
    found = []
    for run in _WORDS.findall(text):
        run = run.strip("'")  # a quoted display: 'Liver transplant status'
        words = run.split()
        if len(words) == 1 and len(run) <= 3:
            continue  # an abbreviation: AFP, ALT, CI
        if any(run in data for data in allowed):
            continue
        found.append(run)
    return found
