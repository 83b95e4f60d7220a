"""Issue 28 follow-up: what the layers below the cards found (screening reasons, exclusions,
caveats: ``fhir_mappers.notes.Note``), launch errors and chart axes read in Chinese.

Over HTTP against the real service, with the vignettes' records; the notes keep their English
(logs, audit) and their ids (tests, analysis).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from json_server import JsonServer

from cards import i18n
from cards.notes import say
from cds_service.smart.assessment import Curve, SurvivalPanel
from cds_service.smart.charts import survival_svg
from fhir_mappers.notes import Drug, Note
from models.screening import Reason, Screen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vignettes"))  # make_bundles, as its tests do
from test_vignettes import SERVICES, VIGNETTES, hook_body  # type: ignore[import-not-found]

BY_ID = {v["id"]: v for v in VIGNETTES}


def cards_of(server, vignette_id: str) -> list[dict]:
    vignette = BY_ID[vignette_id]
    service = SERVICES[vignette.get("hook", "order-select")]
    response = requests.post(f"{server.url}/cds-services/{service}", json=hook_body(vignette), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def test_a_note_is_its_english_and_carries_its_message():
    note = Note(
        "screening.prior_checkpoint_target",
        "prior %(target)s inhibitor %(drug)s",
        target="PD-1",
        drug=Drug("nivolumab"),
    )
    assert note == "prior PD-1 inhibitor nivolumab" and note.id == "screening.prior_checkpoint_target"
    screen = Screen(regimen="PD-1 inhibitor", contraindications=[Reason(note)])
    assert screen.contraindications[0].what.params["drug"] == "nivolumab"
    with i18n.using("zh_CN"):
        assert say(note) == "既往使用PD-1抑制剂纳武利尤单抗"
        assert say("what the EHR wrote") == "what the EHR wrote"  # the record's words stay as written


def test_screening_reasons_read_in_chinese_with_their_codes(live_server):
    zh, en = live_server(locale="zh_CN"), live_server()
    (chinese,), (english,) = cards_of(zh, "v09"), cards_of(en, "v09")
    for words in (
        "器官移植",
        "活动性自身免疫性疾病",
        "静脉曲张出血（活动性或6个月内）",
        "出血是仑伐替尼说明书所列风险；静脉曲张出血",
    ):
        assert words in chinese["detail"], words
    for code in ("Z94.4", "M32.9", "I85.11", "Condition/v09-liver-transplant"):  # the finding, as the record has it
        assert code in chinese["detail"] and code in english["detail"]
    assert "organ transplant" not in chinese["detail"] and "organ transplant" in english["detail"]


def test_an_exclusion_reads_in_chinese_in_summary_and_detail(live_server):
    server = live_server(locale="zh_CN")
    (card,) = cards_of(server, "v17")
    assert "Child-Pugh C级" in card["summary"] and "the study" not in card["summary"]
    assert "该研究仅纳入Child-Pugh A级和B级患者；根据病历计算的Child-Pugh评分：" in card["detail"]
    assert "未知：腹水" in card["detail"] and "Child-Pugh from the record" not in card["detail"]


@pytest.mark.parametrize(
    ("configuration", "chinese", "english"),
    [
        ({"issuer": "x"}, "的SMART配置未指定授权端点或令牌端点", "names no authorization/token endpoint"),
        (
            {
                "authorization_endpoint": "http://127.0.0.1:9/a",
                "token_endpoint": "http://127.0.0.1:9/t",
                "code_challenge_methods_supported": ["plain"],
            },
            "不支持本应用所需的PKCE S256",
            "does not support PKCE S256",
        ),
    ],
)
def test_launch_errors_follow_the_browsers_language(live_server, configuration, chinese, english):
    with JsonServer({"/fhir/.well-known/smart-configuration": configuration}) as ehr:
        iss = f"{ehr.url}/fhir"
        server = live_server(smart_iss_allowlist=[ehr.url])
        url = f"{server.url}/smart/launch?{urlencode({'iss': iss, 'launch': 'xyz'})}"
        zh = requests.get(url, headers={"Accept-Language": "zh-CN"}, allow_redirects=False, timeout=10)
        en = requests.get(url, headers={"Accept-Language": "en"}, allow_redirects=False, timeout=10)
    assert zh.status_code == en.status_code == 502
    assert chinese in zh.text and english not in zh.text
    assert english in en.text and iss in en.text and iss in zh.text


def test_chart_axes_and_description_follow_the_language():
    curve = Curve(label="TKI", times=[0.0, 6.0, 12.0], survival=[1.0, 0.6, 0.3], median_months=8.25)
    panel = SurvivalPanel(endpoint="os", title="OS", curves=[curve])
    with i18n.using("zh_CN"):
        chinese = survival_svg(panel, "chart-os")
    with i18n.using("en"):
        english = survival_svg(panel, "chart-os")
    assert ">月<" in chinese and ">概率<" in chinese and "TKI：中位8.2个月" in chinese
    assert ">Months<" in english and ">Probability<" in english and "TKI: median 8.2 months" in english
    assert "Months" not in chinese and "Probability" not in chinese


@pytest.mark.parametrize(
    ("vignette", "chinese", "english"),
    [
        ("v04", "判断AFP \\> 400 ng/mL需要该检验值：未找到AFP结果", "AFP \\> 400 ng/mL needs the value: no AFP found"),
        ("v05", "AFP：-5 ng/mL在生理上不可能；未采用", "AFP -5 ng/mL is not physiologically possible; not used"),
        ("v25", "`conditions`: 电子病历系统报告此项预取出错（OperationOutcome）", "reported an error for this"),
        ("v33", "的药物仅根据引用的显示文本识别（Medication/unknown无法读取）", "display text only"),
        (
            "v53",
            "开始用药后71至101天之间进展；无法判断是否在91天时间窗内；索拉非尼开始用药 2026-03",
            "progression between 71 and 101 days after start; the 91-day window is undecidable; sorafenib start",
        ),
    ],
)
def test_the_mappers_and_prefetch_notes_read_in_chinese(live_server, vignette, chinese, english):
    """Why a value is missing and when progression happened come from fhir_mappers and the
    prefetch as Notes: Chinese in a zh-CN card, the same English as before in an English one."""
    zh, en = live_server(locale="zh_CN"), live_server()
    chinese_text = "\n".join(card["detail"] for card in cards_of(zh, vignette))
    english_text = "\n".join(card["detail"] for card in cards_of(en, vignette))
    assert chinese in chinese_text and english not in chinese_text
    assert english in english_text
