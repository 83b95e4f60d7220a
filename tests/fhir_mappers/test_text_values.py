"""Lab results sent as text: exactly one number, an optional comparator and unit, nothing guessed."""

import pytest

from fhir_mappers.text_values import TextQuantity, parse_quantity_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">1210 ng/mL", TextQuantity(1210.0, ">", "ng/mL")),
        ("＞1210ng/ml", TextQuantity(1210.0, ">", "ng/ml")),  # full-width comparator, no space
        ("≥ 1210 ng/mL", TextQuantity(1210.0, ">=", "ng/mL")),
        ("<=0.5 IU/mL", TextQuantity(0.5, "<=", "IU/mL")),
        ("＜２０", TextQuantity(20.0, "<", None)),  # full-width digits
        ("  48 U/L ", TextQuantity(48.0, None, "U/L")),
        ("150 10*9/L", TextQuantity(150.0, None, "10*9/L")),
    ],
)
def test_one_number_with_comparator_and_unit_is_read(text: str, expected: TextQuantity) -> None:
    assert parse_quantity_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "阴性",  # "negative": qualitative
        "大于1210",  # a comparator in words
        "1210 (复查)",  # a remark after the number
        "10-20 ng/mL",  # a range
        "1,210 ng/mL",  # a thousands separator is ambiguous across locales
        "1210 1300",
        "-5 U/L",
        "see report",
        "",
        "> ng/mL",
        "1e3 ng/mL",
    ],
)
def test_anything_else_is_not_a_measurement(text: str) -> None:
    assert parse_quantity_text(text) is None
