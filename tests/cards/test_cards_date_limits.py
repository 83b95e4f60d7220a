"""Issue 22, item 5: an order dated at the limits of the calendar is answered, never a 500."""

from __future__ import annotations

import pytest
from fhir_factory import LENVATINIB, SORAFENIB, endoscopy, medication_request
from test_cards_e2e import call, first_line_record, second_line_record


@pytest.mark.parametrize("authored", ["0001-01-01", "0001", "9999-12-31", "9999-12"])
@pytest.mark.parametrize("line", ["first", "second"])
def test_orders_dated_at_the_calendar_limits_get_an_answer(server, authored, line):
    if line == "first":
        record, drug = [*first_line_record(), endoscopy("0001-01-02")], SORAFENIB
    else:
        record, drug = second_line_record("2026-05-01"), LENVATINIB
    draft = medication_request(drug, authored, status="draft", rid="draft-limit")
    cards = call(server, record, [draft])["cards"]  # call() asserts 200 and a valid CDS Hooks response
    if authored == "0001-01-01":  # an exact date: the labs of 2026 are after it, so nothing is scored
        assert all("suggestions" not in card for card in cards)
