"""Issue 28, item 4: laboratory results as Chinese hospitals send them — local codes with Chinese
names, and numeric results as text (valueString ">1210 ng/mL")."""

from __future__ import annotations

from datetime import date

import fhir_factory
import pytest

from fhir_mappers.errors import TerminologyError
from fhir_mappers.features import MissingReason
from fhir_mappers.patient import map_patient_features
from fhir_mappers.terminology import load_terminology

AS_OF = date(2025, 3, 10)


def local_lab(rid, *, code="L-001", when="2025-03-01", **kw):
    return fhir_factory.local_lab(rid, code, when, **kw)


def features(resources, terminology):
    return map_patient_features(resources, as_of=AS_OF, terminology=terminology)


@pytest.mark.parametrize(
    ("display", "text", "key"),
    [
        ("甲胎蛋白", None, "afp"),
        (None, "甲胎蛋白（AFP）", "afp"),  # full-width brackets fold (NFKC)
        ("ＡＦＰ", None, "afp"),  # full-width letters
        (None, " Alpha - Fetoprotein ", "afp"),  # case and whitespace
        (None, "谷丙转氨酶", "alt"),
        ("丙氨酸氨基转移酶", None, "alt"),
        ("GPT", None, "alt"),
        ("谷草转氨酶", None, "ast"),
    ],
)
def test_local_codes_are_recognised_by_their_name_and_say_so(terminology, display, text, key):
    unit = "ng/mL" if key == "afp" else "U/L"
    obs = local_lab("x", display=display, text=text, valueQuantity={"value": 52, "unit": unit})
    feature = getattr(features([obs], terminology), key)
    assert feature.value is not None and feature.value.value == 52
    assert feature.provenance.matched_by_name is True
    assert feature.provenance.coding.display == (display or text)


FRACTIONS = ["AFP-L3%", "AFP 异质体", "甲胎蛋白异质体", "AFP-L3", "甲胎蛋白异质体比率", "AFP (复查)"]


@pytest.mark.parametrize("name", FRACTIONS)
def test_fractions_and_isoforms_are_never_the_total_marker(terminology, name):
    """Exact names only: a substring match would read the lectin-reactive fraction as AFP."""
    for where in ("display", "text"):
        obs = local_lab("l3", **{where: name}, valueQuantity={"value": 12.5, "unit": "%"})
        f = features([obs], terminology)
        assert f.afp.missing is MissingReason.not_found, (where, name)
        assert f.afp_over_400.value is None


def test_a_matching_code_wins_over_any_name(terminology):
    """Names are read only when no coding's code maps anywhere: a LOINC ALT called '甲胎蛋白' is ALT."""
    obs = local_lab("alt", display="甲胎蛋白", valueQuantity={"value": 52, "unit": "U/L"})
    obs["code"]["coding"].append({"system": "http://loinc.org", "code": "1742-6"})
    f = features([obs], terminology)
    assert f.afp.missing is MissingReason.not_found
    assert f.alt.value.value == 52 and f.alt.provenance.matched_by_name is False


def test_names_pointing_to_two_labs_match_neither(terminology):
    obs = local_lab("both", display="ALT", text="AFP", valueQuantity={"value": 52, "unit": "U/L"})
    f = features([obs], terminology)
    assert f.afp.missing is MissingReason.not_found and f.alt.missing is MissingReason.not_found


def test_a_hospital_adds_names_and_bad_name_entries_fail_loudly(tmp_path, terminology):
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nextends: default\nlabs:\n  afp: {names: [AFP定量(化学发光)]}\n", encoding="utf-8")
    obs = local_lab("afp", text="AFP定量（化学发光）", valueQuantity={"value": 8, "unit": "ng/mL"})
    assert features([obs], load_terminology(good)).afp.value.value == 8
    assert features([obs], terminology).afp.missing is MissingReason.not_found
    bad = {
        "twice.yaml": "labs:\n  alt: {names: [AFP]}\n",  # already AFP's in the default
        "section.yaml": "conditions:\n  hcc: {names: [肝癌]}\n",  # names are for labs only
        "key.yaml": "labs:\n  afp: {name: [x]}\n",
        "empty.yaml": "labs:\n  afp: {names: ['  ']}\n",
    }
    for file, body in bad.items():
        path = tmp_path / file
        path.write_text(f"version: 1\nextends: default\n{body}", encoding="utf-8")
        with pytest.raises(TerminologyError, match=file):
            load_terminology(path)


def test_a_text_result_takes_the_valuequantity_path(terminology):
    afp = local_lab("afp", display="甲胎蛋白", valueString="＞1210 ng/mL")
    alt = local_lab("alt", text="谷丙转氨酶", code="L-002", valueString="0.9 ukat/L")
    f = features([afp, alt], terminology)
    assert f.afp.value.model_dump() == {"value": 1210.0, "unit": "ng/mL", "comparator": ">", "from_text": True}
    assert f.afp.provenance.original_value == "＞1210 ng/mL"
    assert f.afp_over_400.value is True
    assert f.alt.value.value == pytest.approx(54.0) and f.alt.value.from_text  # ukat/L converted (× 60)
    assert f.alt_over_40.value is True
    coded = local_lab("afp", display="甲胎蛋白", valueQuantity={"value": 1210, "unit": "ng/mL", "comparator": ">"})
    assert features([coded], terminology).afp.value.from_text is False


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ("阴性", MissingReason.invalid),
        ("10-20", MissingReason.invalid),
        ("1,210", MissingReason.invalid),
        ("大于1210", MissingReason.invalid),
        ("1210 furlongs", MissingReason.unit_unknown),  # the valueQuantity's unit check
        ("1210", MissingReason.unit_unknown),  # no unit: refused as a unitless valueQuantity is
        ("99999999 ng/mL", MissingReason.implausible),  # the valueQuantity's plausibility check
    ],
)
def test_unreadable_or_implausible_text_is_never_used(terminology, result, reason):
    obs = local_lab("afp", display="甲胎蛋白", valueString=result)
    f = features([obs], terminology)
    assert f.afp.value is None and f.afp.missing is reason
    assert f.afp_over_400.value is None
    if reason is MissingReason.invalid:
        assert repr(result) in f.afp.note


def test_a_valuequantity_is_preferred_to_a_text_copy(terminology):
    obs = local_lab("afp", display="甲胎蛋白", valueQuantity={"value": 20, "unit": "ng/mL"}, valueString=">1210")
    f = features([obs], terminology)
    assert f.afp.value.value == 20 and f.afp.value.from_text is False
