"""The model card (TRIPOD+AI items, ONC HTI-1 predictive-DSI source attributes) that every
card's `source.url` links to: HTML for clinicians, JSON and Markdown for governance tools."""

from __future__ import annotations

from functools import lru_cache

import markdown
from flask import Blueprint, Response, jsonify, request

from cards import app_text, i18n

from .runtime import runtime

bp = Blueprint("model_card", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Model card — HCC sorafenib CDS</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}}
table{{border-collapse:collapse}}td,th{{border:1px solid #888;padding:.25rem .5rem;text-align:left}}
a{{color:#0b4f8a}}</style></head>
<body>{notice}<main>{body}</main>
<p><a href="model-card.json">JSON</a> · <a href="model-card.md">Markdown</a></p></body></html>"""


@lru_cache(maxsize=4)
def _html(markdown_text: str, locale: str) -> str:
    """The card's text is English (models.model_card); a reader of another language is told so."""
    notice = ""
    if locale != "en":
        with i18n.using(locale):
            notice = f'<p role="note" lang="{i18n.html_lang()}">{app_text.model_card_english_only()}</p>'
    return _PAGE.format(notice=notice, body=markdown.markdown(markdown_text, extensions=["tables"]))


@bp.get("/model-card")
def model_card_html():
    locale = i18n.choose(request.accept_languages.values(), runtime().settings.locale)
    return Response(_html(runtime().assessor.bundle.model_card_markdown(), locale), mimetype="text/html")


@bp.get("/model-card.json")
def model_card_json():
    return jsonify(runtime().assessor.bundle.model_card())


@bp.get("/model-card.md")
def model_card_markdown():
    return Response(runtime().assessor.bundle.model_card_markdown(), mimetype="text/markdown")
