"""The model card (TRIPOD+AI items, ONC HTI-1 predictive-DSI source attributes) that every
card's `source.url` links to: HTML for clinicians, JSON and Markdown for governance tools."""

from __future__ import annotations

from functools import lru_cache

import markdown
from flask import Blueprint, Response, jsonify

from .runtime import runtime

bp = Blueprint("model_card", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Model card — HCC sorafenib CDS</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}}
table{{border-collapse:collapse}}td,th{{border:1px solid #888;padding:.25rem .5rem;text-align:left}}
a{{color:#0b4f8a}}</style></head>
<body><main>{body}</main><p><a href="model-card.json">JSON</a> · <a href="model-card.md">Markdown</a></p></body></html>"""


@lru_cache(maxsize=4)
def _html(markdown_text: str) -> str:
    return _PAGE.format(body=markdown.markdown(markdown_text, extensions=["tables"]))


@bp.get("/model-card")
def model_card_html():
    return Response(_html(runtime().pipeline.bundle.model_card_markdown()), mimetype="text/html")


@bp.get("/model-card.json")
def model_card_json():
    return jsonify(runtime().pipeline.bundle.model_card())


@bp.get("/model-card.md")
def model_card_markdown():
    return Response(runtime().pipeline.bundle.model_card_markdown(), mimetype="text/markdown")
