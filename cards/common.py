"""Pieces every card shares: source (model card, HTI-1), links, override reasons, number format."""

from __future__ import annotations

import re

from hcc_evidence import load_evidence
from models.artifacts import TrainingSummary
from models.screening import Reason, Screen

from .context import CODE_SYSTEM, CardContext
from .schema import Card, Coding, Link, Source

SUMMARY_LIMIT = 139  # the spec: "<140-character summary"


def source(ctx: CardContext, kind: str, topic: str, model_version: str) -> Source:
    """HTI-1: the card's source links to the model card that carries the DSI source attributes."""
    return Source(
        label=f"HCC sorafenib CDS, model {model_version} (Lei et al. 2025)",
        url=f"{ctx.base_url}/model-card",
        icon=f"{ctx.base_url}/static/hcc-cds-icon.png",
        topic=Coding(system=f"{CODE_SYSTEM}:card-topic", code=kind, display=topic),
    )


def links(ctx: CardContext) -> list[Link]:
    evidence = load_evidence()
    result = [
        Link(label=f"Study: Lei et al. 2025 (DOI {evidence.source.doi})", url=evidence.source.url, type="absolute"),
        Link(label="Model card: intended use, performance, limits", url=f"{ctx.base_url}/model-card", type="absolute"),
    ]
    if ctx.smart_launch_url:
        result.append(
            Link(
                label="Open evidence and survival curves (SMART app)",
                url=ctx.smart_launch_url,
                type="smart",
                appContext=ctx.app_context,
            )
        )
    return result


def override_reason(code: str, display: str) -> Coding:
    return Coding(system=f"{CODE_SYSTEM}:override-reason", code=code, display=display)


COMMON_OVERRIDE_REASONS = [
    override_reason("patient-preference", "Patient preference"),
    override_reason("tumour-board", "Already discussed at tumour board"),
    override_reason("not-applicable", "Estimate does not apply to this patient"),
]


def fit_summary(text: str) -> str:
    """CDS Hooks caps `summary` below 140 characters; our templates stay under it, this is a guard."""
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def pct(value: float, decimals: int = 0) -> str:
    return f"{100 * value:.{decimals}f}%"


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
    return "not reached" if value is None else f"{value:.1f}"


def citation_line() -> str:  # every card ends with it
    evidence = load_evidence()
    return f"Source: {evidence.source.citation} doi:{evidence.source.doi}"


def cohort_caveat() -> str:
    """The study's limits, with the HBV share computed from its Table 1 counts: labelled as the
    study's, since a retrained model was fitted to other patients."""
    evidence = load_evidence()
    primary_n, secondary_n = evidence.table1_counts["hbv"][:2]
    hbv = (primary_n + secondary_n) / evidence.cohort.n
    return (
        f"The study: retrospective, two centres in China, {100 * hbv:.1f}% HBV, n = {evidence.cohort.n}, "
        "no prospective validation"
    )


def training_data_name(training: TrainingSummary) -> str:
    """The data a model was fitted to, as its artifact records it (never the study's cohort,
    unless the artifact says it is the reconstruction of it)."""
    if training.reconstructed:
        return "a cohort reconstructed from the study's published figures"
    return f"{md(training.source)}, trained {training.created_date}"


def fitted_how(training: TrainingSummary, refitted: str) -> str:
    """'fitted to …' or, for a recalibration, which part came from where."""
    if training.recalibrated_from:
        return (
            f"with the coefficients of model {md(training.recalibrated_from)} and {refitted} recalibrated "
            f"to {training_data_name(training)}"
        )
    return f"fitted to {training_data_name(training)}"


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
        return md(reason.what)
    coding = prov.coding
    code = code_label(coding.system, coding.code) if coding else ""
    if coding and coding.display:
        code = f"{code} '{coding.display}'".strip()
    where = [code, reason.when or "undated", f"{prov.resource_type}/{prov.resource_id}"]
    return md(f"{reason.what} ({', '.join(part for part in where if part)})")


def suggestion_label(label: str, screen: Screen) -> str:
    """The button text: what the order does, then what to check before signing it."""
    return f"{label} — check first: {'; '.join(screen.checks)}" if screen.checks else label


def screening_lines(screens: list[Screen]) -> list[str]:
    """Each regimen's screening result: why it is not offered, what to check, what to weigh."""
    lines = ["", "**Screened against the record before any order is drafted:**"]
    for screen in screens:
        if not screen.offered:
            why = "; ".join(reason_text(r) for r in screen.contraindications)
            lines.append(f"- **{screen.regimen}: not offered** — {why}.")
            continue
        lines.append(f"- **{screen.regimen}**: no contraindication found in the record.")
        lines += [f"  - Check first: {md(check)}." for check in screen.checks]
        lines += [f"  - Caveat: {reason_text(r)}." for r in screen.caveats]
    return lines


def withheld_line(drafts_withheld: str | None) -> list[str]:
    return [f"**No order is drafted:** {md(drafts_withheld)}.", ""] if drafts_withheld else []


def caveat_lines(caveats: list[str]) -> list[str]:
    if not caveats:
        return []
    return ["", "**Check fit to the study population:**", *(f"- {md(c)}" for c in caveats)]


def missing_data_lines(missing: dict[str, str]) -> list[str]:
    if not missing:
        return []
    lines = ["", "**Data that could not be read** (the assessment used what was available):"]
    # a code span shows its content literally: only a backtick could close it early
    lines += [f"- `{_LINE_BREAKS.sub(' ', key).replace('`', '')}`: {md(why)}" for key, why in sorted(missing.items())]
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
    suggestions: list | None = None,
    **extra,
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


def not_applicable_card(ctx: CardContext, assessment, *, kind: str, topic: str, what: str, population: str) -> Card:
    """The study's exclusions apply: say so and why, and show no estimate."""
    reasons = assessment.out_of_scope
    return card(
        ctx,
        kind=kind,
        topic=topic,
        model_version=assessment.model_version,
        summary=f"{what} does not apply: {reasons[0].split(' (')[0]}",
        detail=[
            f"{population} It does not apply here because:",
            "",
            *(f"- {md(reason)}" for reason in reasons),
            "",
            "No estimate is shown.",
            *missing_data_lines(assessment.missing_data),
        ],
    )
