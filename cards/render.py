"""Assessment → CDS Hooks response."""

from __future__ import annotations

from models.assessment import Assessment, Scenario

from .context import CardContext
from .first_line import first_line_cards
from .i18n import using
from .schema import CdsResponse
from .second_line import second_line_cards


def build_response(assessment: Assessment | None, ctx: CardContext) -> CdsResponse:
    if assessment is None:
        return CdsResponse(cards=[])
    build = first_line_cards if assessment.scenario is Scenario.first_line else second_line_cards
    with using(ctx.locale):
        return CdsResponse(cards=build(assessment, ctx))
