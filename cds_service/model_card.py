"""The model card (TRIPOD+AI items, ONC HTI-1 predictive-DSI source attributes) that every
card's `source.url` links to: HTML for clinicians in their language (Accept-Language, else
CDS_LOCALE), JSON and Markdown for governance tools (English unless ``?locale=`` asks)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import markdown
from flask import Blueprint, Response, jsonify, request
from markupsafe import escape

from cards import app_text, i18n
from cards.notes import say
from models.model_card import model_card_markdown
from models.registry import ModelBundle

from .errors import ApiError
from .runtime import runtime

bp = Blueprint("model_card", __name__)

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}}
table{{border-collapse:collapse}}td,th{{border:1px solid #888;padding:.25rem .5rem;text-align:left}}
a{{color:#0b4f8a}}</style></head>
<body><main>{body}</main>
<p><a href="model-card.json{query}">JSON</a> · <a href="model-card.md{query}">Markdown</a></p></body></html>"""


def _markdown(bundle: ModelBundle, locale: str) -> str:
    """The loaded bundle's card in ``locale``. Not cached: the page is opened rarely, and the
    rendering is cheap beside the Markdown-to-HTML conversion, which is."""
    with i18n.using(locale):
        return model_card_markdown(bundle.artifact, say)


def _localised(value: Any) -> Any:
    """The card's JSON with each note in the current language; keys, numbers and data as they are."""
    if isinstance(value, dict):
        return {key: _localised(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_localised(item) for item in value]
    return say(value) if isinstance(value, str) else value


@lru_cache(maxsize=8)
def _html(markdown_text: str, locale: str) -> str:
    with i18n.using(locale):
        query = "" if locale == i18n.DEFAULT_LOCALE else f"?locale={i18n.html_lang()}"
        return _PAGE.format(
            lang=i18n.html_lang(),
            title=escape(app_text.model_card_title()),
            body=markdown.markdown(markdown_text, extensions=["tables"]),
            query=query,
        )


def _asked_locale() -> str | None:
    """``?locale=`` for the JSON and Markdown (English, as governance tools read them, unless asked)."""
    asked = request.args.get("locale")
    if asked is None:
        return None
    try:
        return i18n.check_locale(asked)
    except i18n.UnsupportedLocale as exc:
        raise ApiError(400, "unsupported_locale", str(exc)) from None


def _bundle() -> ModelBundle:
    bundle: ModelBundle = runtime().assessor.bundle
    return bundle


@bp.get("/model-card")
def model_card_html():
    locale = _asked_locale() or i18n.choose(request.accept_languages.values(), runtime().settings.locale)
    return Response(_html(_markdown(_bundle(), locale), locale), mimetype="text/html")


@bp.get("/model-card.json")
def model_card_json():
    locale = _asked_locale()
    card = _bundle().model_card()
    if locale is None:
        return jsonify(card)
    with i18n.using(locale):
        return jsonify(_localised(card))


@bp.get("/model-card.md")
def model_card_markdown_view():
    return Response(_markdown(_bundle(), _asked_locale() or i18n.DEFAULT_LOCALE), mimetype="text/markdown")
