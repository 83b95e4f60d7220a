"""Issue 28 follow-up: the model card in Simplified Chinese, over HTTP against the real service.

The page follows Accept-Language (else CDS_LOCALE); its JSON and Markdown stay English for
governance tools unless ``?locale=`` asks. Headings and prose are Chinese, numbers unchanged.
"""

from __future__ import annotations

import html
import re

import pytest
import requests

from hcc_evidence import load_evidence
from models.artifacts import read_bundle

from .pseudo import escapes, pseudo_locale

TAGS = re.compile(r"<style.*?</style>|<[^>]+>", re.DOTALL)  # a style sheet is not text
CJK = re.compile(r"[\u4e00-\u9fff]")


def page_text(body: str) -> str:
    return html.unescape(TAGS.sub(" ", body))


def artifact_data() -> set[str]:
    """What the model card quotes from the artifact and the evidence file as data: the training
    data's name, input feature names, software versions, the citation."""
    metadata = read_bundle().metadata
    data = {metadata.training_data, load_evidence().source.citation, *metadata.software}
    bundle = read_bundle()
    data |= {*bundle.resistance.features, *bundle.pfs.covariates, *bundle.os.covariates}
    return data


def test_the_model_card_page_is_chinese_for_a_chinese_reader_with_the_same_numbers(server):
    chinese = requests.get(f"{server.url}/model-card", headers={"Accept-Language": "zh-CN"}, timeout=10)
    english = requests.get(f"{server.url}/model-card", headers={"Accept-Language": "en"}, timeout=10)
    assert chinese.status_code == english.status_code == 200
    assert '<html lang="zh-CN">' in chinese.text and '<html lang="en">' in english.text
    assert "<title>模型卡 — 肝细胞癌索拉非尼临床决策支持</title>" in chinese.text
    for heading in (
        "本模型的训练数据（取自模型文件）",
        "ONC HTI-1 来源属性",
        "（1）干预措施的详情与输出",
        "TRIPOD+AI 条目",
    ):
        assert heading in chinese.text, heading
    assert "默认模型拟合于根据该研究已发表汇总数据" in chinese.text  # the synthetic-cohort banner
    assert "模型卡目前仅提供英文版" not in chinese.text  # no English-only notice any more
    assert "Intended use of the intervention" in english.text and not CJK.search(english.text)
    numbers = re.compile(r"\d+/\d+ \(\d+\.\d%\)|\b0\.\d{3}\b")
    assert numbers.findall(page_text(chinese.text)) == numbers.findall(page_text(english.text))
    assert 'href="model-card.json?locale=zh-CN"' in chinese.text


def test_json_and_markdown_are_english_unless_a_locale_is_asked_for(server):
    english = requests.get(f"{server.url}/model-card.json", headers={"Accept-Language": "zh-CN"}, timeout=10).json()
    chinese = requests.get(f"{server.url}/model-card.json?locale=zh-CN", timeout=10).json()
    assert english["hti1_source_attributes"]["purpose"]["intended_users"] == "oncologists and hepatologists"
    assert chinese["hti1_source_attributes"]["purpose"]["intended_users"] == "肿瘤科医生和肝病科医生"
    assert chinese.keys() == english.keys()  # keys are identifiers, not words
    assert chinese["training_data"]["n"] == english["training_data"]["n"] == 424
    validity = "validity_same_source"
    assert (
        chinese["hti1_source_attributes"]["quantitative_performance"][validity]["primary_resistance_auc_cv"]
        == english["hti1_source_attributes"]["quantitative_performance"][validity]["primary_resistance_auc_cv"]
    )
    markdown = requests.get(f"{server.url}/model-card.md?locale=zh_CN", timeout=10)
    assert markdown.text.startswith("# 模型卡：") and "## TRIPOD+AI 条目" in markdown.text
    assert requests.get(f"{server.url}/model-card.md", timeout=10).text.startswith("# Model card: ")


@pytest.mark.parametrize("path", ["/model-card", "/model-card.json", "/model-card.md"])
def test_an_unsupported_locale_is_a_400_json_error(server, path):
    response = requests.get(f"{server.url}{path}?locale=fr", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_locale" and "zh_CN" in response.json()["message"]


def test_no_model_card_text_escapes_the_catalogue(monkeypatch, live_server):
    """Pseudo-locale run of the page and of the SMART app's Markdown copy: every word outside
    the markers is data from the artifact or the evidence file."""
    with pseudo_locale(monkeypatch):
        server = live_server(locale="zh_CN")
        page = requests.get(f"{server.url}/model-card", timeout=10).text
        smart_copy = requests.get(f"{server.url}/smart/model-card", timeout=10).text
    assert "⟦" in page and "⟦" in smart_copy
    # The ONC rule's paragraph reference, in English until models/model_card.py words it.
    allowed = artifact_data() | {"paragraph (b)(11)(iv)(A)(5)-(13)"}
    found = escapes(page_text(page), allowed) + escapes(smart_copy, allowed)
    assert found == [], sorted(set(found))
