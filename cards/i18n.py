"""The clinician's language for cards and the SMART app: Babel catalogues and locale formatting.

Catalogues live beside the code (``cards/translations/<locale>/LC_MESSAGES/messages.po``) and are
read as ``.po``: a fresh clone and the image need no compile step. English is the source language.
The language is chosen per hook call or page (``using``), so the wording below reads it from a
context variable instead of threading it through every helper.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import dates, numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from hcc_evidence.errors import HccCdsError

LOCALES = ("en", "zh_CN")  # shipped; CDS_LOCALE must name one of them
DEFAULT_LOCALE = "en"
DOMAIN = "messages"
TRANSLATIONS_DIR = Path(__file__).with_name("translations")

_current: ContextVar[str] = ContextVar("cards_locale", default=DEFAULT_LOCALE)


class UnsupportedLocale(HccCdsError, ValueError):
    """A locale the service ships no catalogue for."""


def check_locale(value: str) -> str:
    """``value`` as a shipped locale name (``zh-CN`` and ``zh_CN`` alike), else UnsupportedLocale."""
    wanted = value.strip().replace("-", "_").lower()
    for name in LOCALES:
        if name.lower() == wanted:
            return name
    raise UnsupportedLocale(f"unsupported locale {value!r}: the service ships {', '.join(LOCALES)}")


def negotiate(preferred: Iterable[str]) -> str | None:
    """The first shipped locale matching a preference list of BCP 47 tags (best first), or None.
    ``zh``, ``zh-Hans`` and ``zh-SG`` read Simplified Chinese; ``zh-TW``/``zh-HK``/``zh-Hant`` are
    Traditional, which is not shipped; any ``en-*`` reads English."""
    for tag in preferred:
        parts = tag.strip().replace("_", "-").lower().split("-")
        if parts[0] == "en":
            return "en"
        if parts[0] == "zh" and not {"tw", "hk", "mo", "hant"} & set(parts[1:]):
            return "zh_CN"
    return None


def choose(preferred: Iterable[str], default: str) -> str:
    """The first shipped locale among ``preferred`` (e.g. Accept-Language), else ``default``."""
    return negotiate(preferred) or default


def practitioner_locale(resource: Any) -> str | None:
    """The shipped locale of a Practitioner's ``communication`` (R4: CodeableConcepts; R5: with
    ``language`` and ``preferred``), preferred languages first, or None."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Practitioner":
        return None
    entries = [e for e in resource.get("communication") or [] if isinstance(e, dict)]
    entries.sort(key=lambda e: e.get("preferred") is not True)  # stable: list order otherwise
    tags = []
    for entry in entries:
        concept = entry.get("language", entry)
        codings = concept.get("coding") if isinstance(concept, dict) else None
        tags += [c["code"] for c in codings or [] if isinstance(c, dict) and isinstance(c.get("code"), str)]
    return negotiate(tags)


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> Translations:
    """The locale's catalogue, compiled in memory once per process. Fuzzy entries are left out."""
    with (TRANSLATIONS_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def current_locale() -> str:
    return _current.get()


@contextmanager
def using(locale: str) -> Iterator[None]:
    """Word and format everything inside the block in ``locale``."""
    reset = activate(locale)
    try:
        yield
    finally:
        reset()


def activate(locale: str) -> Callable[[], None]:
    """``using`` for a request that starts and ends in different hooks: returns the undo."""
    token = _current.set(check_locale(locale))
    return lambda: _current.reset(token)


def translate(message: str) -> str:
    """The current language's text for ``message``, unformatted: for Jinja's newstyle gettext,
    which fills the placeholders itself."""
    return translations(_current.get()).gettext(message)


def translate_plural(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def gettext(message: str, **values: Any) -> str:
    """``message`` in the current language, ``%(name)s`` placeholders filled from ``values``.
    Every message is a format string (a literal percent sign is ``%%``), as in Jinja's newstyle
    gettext, so the templates' and the code's messages follow one rule."""
    return translate(message) % values


_ = gettext


def pct(value: float, decimals: int = 0) -> str:
    """A proportion as a percentage in the current locale ('42%', '42.5%')."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "") + "%"
    return numbers.format_percent(value, pattern, locale=_current.get())


def decimal(value: float, decimals: int = 1) -> str:
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return numbers.format_decimal(value, pattern, locale=_current.get())


# English keeps ISO 8601, as the record writes dates: unambiguous between en-US and en-GB readers.
_DATE_FORMATS = {"en": "yyyy-MM-dd", "zh_CN": "long"}


def day(value: date) -> str:
    """A calendar date as the locale writes it ('2026-11-20', '2026年11月20日')."""
    locale = _current.get()
    return dates.format_date(value, _DATE_FORMATS[locale], locale=locale)


def html_lang() -> str:
    """The BCP 47 tag for ``<html lang>`` (zh-CN, not zh_CN)."""
    return _current.get().replace("_", "-")


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; ``_`` translates it where it is shown."""
    return message
