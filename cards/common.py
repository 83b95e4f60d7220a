"""Pieces every card shares: source (model card, HTI-1), links, override reasons, number format."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from hcc_evidence import load_evidence
from models.artifacts import TrainingSummary
from models.assessment import Assessment
from models.screening import Reason, Screen

from . import i18n
from .context import CODE_SYSTEM, CardContext
from .i18n import N_, _
from .names import regimen_name
from .notes import say, short
from .schema import Card, Coding, Link, Source, Suggestion

SUMMARY_LIMIT = 139  # the spec: "<140-character summary"


def source(ctx: CardContext, kind: str, topic: str, model_version: str) -> Source:
    """HTI-1: the card's source links to the model card that carries the DSI source attributes."""
    return Source(
        label=_("HCC sorafenib CDS, model %(version)s (Lei et al. 2025)", version=model_version),
        url=f"{ctx.base_url}/model-card",
        icon=f"{ctx.base_url}/static/hcc-cds-icon.png",
        topic=Coding(system=f"{CODE_SYSTEM}:card-topic", code=kind, display=topic),
    )


def links(ctx: CardContext) -> list[Link]:
    evidence = load_evidence()
    result = [
        Link(
            label=_("Study: Lei et al. 2025 (DOI %(doi)s)", doi=evidence.source.doi),
            url=evidence.source.url,
            type="absolute",
        ),
        Link(
            label=_("Model card: intended use, performance, limits"), url=f"{ctx.base_url}/model-card", type="absolute"
        ),
    ]
    if ctx.smart_launch_url:
        result.append(
            Link(
                label=_("Open evidence and survival curves (SMART app)"),
                url=ctx.smart_launch_url,
                type="smart",
                appContext=ctx.app_context,
            )
        )
    return result


def override_reason(code: str, display: str) -> Coding:
    return Coding(system=f"{CODE_SYSTEM}:override-reason", code=code, display=display)


def common_override_reasons() -> list[Coding]:
    """Codes stay the same in every language (feedback is compared across hospitals); displays do not."""
    return [
        override_reason("patient-preference", _("Patient preference")),
        override_reason("tumour-board", _("Already discussed at tumour board")),
        override_reason("not-applicable", _("Estimate does not apply to this patient")),
    ]


def fit_summary(text: str) -> str:
    """CDS Hooks caps `summary` below 140 characters; our templates stay under it, this is a guard."""
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


pct = i18n.pct


_SYSTEM_LABELS = {
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED CT",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.whocc.no/atc": "ATC",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
}


def code_label(system: str | None, code: str | None) -> str:
    """'LOINC 1834-1' for a known system; a local system keeps its URI so IT can trace it."""
    if not code:
        return ""
    return f"{_SYSTEM_LABELS.get(system or '', system or 'code')} {code}"


def months(value: float | None) -> str:
    return _("not reached") if value is None else i18n.decimal(value, 1)


MISSING_REASONS = {  # fhir_mappers.features.MissingReason values, as a clinician reads them
    "not_found": N_("not found"),
    "stale": N_("stale"),
    "unit_unknown": N_("unit unknown"),
    "entered_in_error": N_("entered in error"),
    "not_final": N_("not final"),
    "data_absent": N_("data absent"),
    "out_of_window": N_("out of window"),
    "ambiguous": N_("ambiguous"),
    "undecidable": N_("undecidable"),
    "invalid": N_("invalid"),
    "no_date": N_("no date"),
    "no_sorafenib": N_("no sorafenib"),
    "no_progression": N_("no progression"),
    "implausible": N_("implausible"),
}


def missing_reason(value: str | None) -> str:
    """Why a value is missing, in words ('missing' when the mapper gave no reason)."""
    if value is None:
        return _("missing")
    return _(MISSING_REASONS[value]) if value in MISSING_REASONS else value.replace("_", " ")


def citation_line() -> str:  # every card ends with it
    evidence = load_evidence()
    return _("Source: %(citation)s doi:%(doi)s", citation=evidence.source.citation, doi=evidence.source.doi)


def cohort_caveat() -> str:
    """The study's limits, with the HBV share computed from its Table 1 counts: labelled as the
    study's, since a retrained model was fitted to other patients."""
    evidence = load_evidence()
    primary_n, secondary_n = evidence.table1_counts["hbv"][:2]
    hbv = (primary_n + secondary_n) / evidence.cohort.n
    return _(
        "The study: retrospective, two centres in China, %(hbv)s HBV, n = %(n)s, no prospective validation",
        hbv=pct(hbv, 1),
        n=evidence.cohort.n,
    )


def training_data_name(training: TrainingSummary) -> str:
    """The data a model was fitted to, as its artifact records it (never the study's cohort,
    unless the artifact says it is the reconstruction of it)."""
    if training.reconstructed:
        return _("a cohort reconstructed from the study's published figures")
    return _("%(source)s, trained %(date)s", source=md(training.source), date=training.created_date)


def fitted_how(training: TrainingSummary, refitted: str) -> str:
    """'fitted to …' or, for a recalibration, which part came from where (``refitted``: translated)."""
    if training.recalibrated_from:
        return _(
            "with the coefficients of model %(model)s and %(part)s recalibrated to %(data)s",
            model=md(training.recalibrated_from),
            part=refitted,
            data=training_data_name(training),
        )
    return _("fitted to %(data)s", data=training_data_name(training))


# GitHub-flavoured Markdown that a hostile or careless FHIR string could use against the EHR's
# renderer: links and images (an escaped [ leaves "](...)" and "!" inert), raw HTML (< >), emphasis
# and code (* _ `), table cells (|) and the escape itself. Line breaks would end a table row or
# start a block (a heading, a list): they become spaces. Interpolated text never starts a line.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def md(value: object) -> str:
    """Any FHIR-derived text, made inert for a card's Markdown `detail`."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)))


def reason_text(reason: Reason) -> str:
    """A finding with what the clinician needs to find it: code, date as written, resource."""
    prov = reason.provenance
    if prov is None:
        return md(say(reason.what))
    coding = prov.coding
    code = code_label(coding.system, coding.code) if coding else ""
    if coding and coding.display:
        code = f"{code} '{coding.display}'".strip()
    where = [code, reason.when or _("undated"), f"{prov.resource_type}/{prov.resource_id}"]
    return md(f"{say(reason.what)} ({', '.join(part for part in where if part)})")


def suggestion_label(label: str, screen: Screen) -> str:
    """The button text: what the order does, then what to check before signing it."""
    if not screen.checks:
        return label
    return _("%(label)s — check first: %(checks)s", label=label, checks="; ".join(say(c) for c in screen.checks))


def screening_lines(screens: list[Screen]) -> list[str]:
    """Each regimen's screening result: why it is not offered, what to check, what to weigh."""
    lines = ["", _("**Screened against the record before any order is drafted:**")]
    for screen in screens:
        if not screen.offered:
            why = "; ".join(reason_text(r) for r in screen.contraindications)
            lines.append(_("- **%(regimen)s: not offered** — %(why)s.", regimen=regimen_name(screen.regimen), why=why))
            continue
        lines.append(
            _("- **%(regimen)s**: no contraindication found in the record.", regimen=regimen_name(screen.regimen))
        )
        lines += [_("  - Check first: %(check)s.", check=md(say(check))) for check in screen.checks]
        lines += [_("  - Caveat: %(caveat)s.", caveat=reason_text(r)) for r in screen.caveats]
    return lines


def withheld_line(drafts_withheld: str | None) -> list[str]:
    return [_("**No order is drafted:** %(why)s.", why=md(say(drafts_withheld))), ""] if drafts_withheld else []


def caveat_lines(caveats: Sequence[str]) -> list[str]:
    if not caveats:
        return []
    return ["", _("**Check fit to the study population:**"), *(f"- {md(say(c))}" for c in caveats)]


def missing_data_lines(missing: dict[str, str]) -> list[str]:
    if not missing:
        return []
    lines = ["", _("**Data that could not be read** (the assessment used what was available):")]
    # a code span shows its content literally: only a backtick could close it early
    lines += [
        f"- `{_LINE_BREAKS.sub(' ', key).replace('`', '')}`: {md(say(why))}" for key, why in sorted(missing.items())
    ]
    return lines


def card(
    ctx: CardContext,
    *,
    kind: str,
    topic: str,
    model_version: str,
    summary: str,
    detail: list[str],
    indicator: str = "info",
    suggestions: list[Suggestion] | None = None,
    **extra: Any,
) -> Card:
    """A card with what every card carries: stable uuid, source (model card), links, citation.
    Our suggestions are always alternatives to one another, hence `at-most-one`."""
    return Card(
        suggestions=suggestions or None,
        selectionBehavior="at-most-one" if suggestions else None,
        uuid=ctx.card_uuid(kind),
        summary=fit_summary(summary),
        detail="\n".join([*detail, "", citation_line()]),
        indicator=indicator,
        source=source(ctx, kind, topic, model_version),
        links=links(ctx),
        **extra,
    )


def not_applicable_card(
    ctx: CardContext, assessment: Assessment, *, kind: str, topic: str, what: str, population: str
) -> Card:
    """The study's exclusions apply: say so and why, and show no estimate."""
    reasons = assessment.out_of_scope
    return card(
        ctx,
        kind=kind,
        topic=topic,
        model_version=assessment.model_version,
        summary=_("%(what)s does not apply: %(reason)s", what=what, reason=short(reasons[0])),
        detail=[
            _("%(population)s It does not apply here because:", population=population),
            "",
            *(f"- {md(say(reason))}" for reason in reasons),
            "",
            _("No estimate is shown."),
            *missing_data_lines(assessment.missing_data),
        ],
    )
