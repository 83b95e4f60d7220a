"""Scenario B — a TKI ordered after sorafenib: resistance type and second-line survival estimates."""

from __future__ import annotations

from fhir_mappers.features import Provenance
from hcc_evidence import load_evidence
from models.assessment import Assessment
from models.registry import RegimenComparison
from models.survival import SurvivalEstimate

from . import common
from .context import CardContext
from .schema import Card
from .suggestions import add_order, is_coded

KIND = "second-line-tki-pd1"
KIND_OUT_OF_SCOPE = "second-line-not-applicable"
TOPIC = "Second-line survival: TKI alone vs TKI + PD-1 inhibitor"
LANDMARKS = (6, 12, 24)
# Ramucirumab's criterion after sorafenib, as the evidence brief lists the FDA-approved options.
RAMUCIRUMAB_AFP_NG_PER_ML = 400.0
MAX_PD1_SUGGESTIONS = 4

OVERRIDE_REASONS = [
    common.override_reason("contraindication-pd1", "Contraindication to a PD-1 inhibitor"),
    common.override_reason("pd1-unavailable", "PD-1 inhibitor not available or not reimbursed"),
    *common.COMMON_OVERRIDE_REASONS,
]


def second_line_cards(assessment: Assessment, ctx: CardContext) -> list[Card]:
    if assessment.out_of_scope or assessment.survival is None:
        return [_not_applicable(assessment, ctx)]
    return [_survival_card(assessment, assessment.survival, ctx)]


def _resistance_label(assessment: Assessment) -> str | None:
    return assessment.history.resistance_type.value  # "primary", "secondary" or None


def _survival_card(assessment: Assessment, survival: RegimenComparison, ctx: CardContext) -> Card:
    resistance = _resistance_label(assessment)
    os_tki, os_combo = survival.os["tki"].median_months, survival.os["tki_pd1"].median_months
    headline = f"{resistance.capitalize()} sorafenib resistance" if resistance else "Sorafenib resistance type unclear"
    if resistance and assessment.borderline:
        headline += " (borderline)"
    summary = (
        f"{headline}: est. median OS {common.months(os_combo)} vs {common.months(os_tki)} mo "
        "with TKI + PD-1 vs TKI alone"
    )
    n = load_evidence().second_line.n
    detail = [
        *common.withheld_line(assessment.drafts_withheld),
        *_classification_lines(assessment),
        "",
        *_survival_table(assessment, survival),
        "",
        *_study_lines(resistance),
        "",
        "**Evidence caveats.** The study's regimen comparison is observational, not randomised: "
        f"{n['primary_combination'] + n['secondary_combination']} combination vs "
        f"{n['primary_tki'] + n['secondary_tki']} TKI-alone patients. "
        f"{common.cohort_caveat()}. Model discrimination is modest (C-index PFS {survival.c_index['pfs']:.2f}, "
        f"OS {survival.c_index['os']:.2f}, optimism-corrected, on "
        f"{'the reconstructed cohort' if survival.training.reconstructed else 'the data it was fitted to'}).",
        "",
        *_guideline_lines(assessment),
        *common.caveat_lines(assessment.caveats),
        *common.missing_data_lines(assessment.missing_data),
    ]
    suggestions = None
    indicator = "info"
    detail += common.screening_lines(assessment.screens)
    (pd1,) = assessment.screens
    if assessment.pd1_in_draft:
        detail.insert(0, "A PD-1 inhibitor is already among the draft orders; estimates shown for information.\n")
        if not pd1.offered:  # the clinician's own draft meets a contraindication: say so loudly
            indicator = "warning"
            summary = f"Drafted PD-1 inhibitor: the record shows {pd1.contraindications[0].what} (see card)"
            detail.insert(
                0,
                f"**Check the drafted PD-1 inhibitor: the record argues against it** — "
                f"{'; '.join(common.reason_text(r) for r in pd1.contraindications)}.\n",
            )
    elif pd1.offered and assessment.drafts_withheld is None:
        drugs = [d for d in _pd1_candidates(ctx) if is_coded(ctx, d)][:MAX_PD1_SUGGESTIONS]
        suggestions = [
            add_order(ctx, KIND, common.suggestion_label(f"Add a PD-1 inhibitor: {drug}", pd1), drug) for drug in drugs
        ] or None
    return common.card(
        ctx,
        kind=KIND,
        topic=TOPIC,
        model_version=assessment.model_version,
        summary=summary,
        detail=detail,
        indicator=indicator,
        suggestions=suggestions,
        overrideReasons=OVERRIDE_REASONS if suggestions or indicator == "warning" else None,
    )


def _pd1_candidates(ctx: CardContext) -> list[str]:
    """Sintilimab first (the agent the study names), then the other PD-1 inhibitors the
    terminology knows, RxNorm-coded ones before the rest."""
    names = [name for name, drug in ctx.terminology.drugs.items() if drug.drug_class == "pd1_inhibitor"]
    return sorted(names, key=lambda n: (n != "sintilimab", not _has_rxnorm(ctx, n), n))


def _has_rxnorm(ctx: CardContext, drug: str) -> bool:
    return any(c.system == "http://www.nlm.nih.gov/research/umls/rxnorm" for c in ctx.terminology.drug_codes(drug))


def _source_text(prov: Provenance | None) -> str:
    if prov is None:
        return "source unknown"
    return common.md(
        f"{prov.resource_type}/{prov.resource_id}" + (f", {prov.effective_source}" if prov.effective_source else "")
    )


def _classification_lines(assessment: Assessment) -> list[str]:
    history = assessment.history
    resistance = history.resistance_type
    start, progression = history.sorafenib_start, history.first_progression_after_sorafenib
    window = history.primary_window_days
    if resistance.value is None:
        head = (
            f"**Resistance type could not be determined** ({(resistance.missing.value if resistance.missing else 'unknown').replace('_', ' ')}): "
            f"{common.md(resistance.note)}. The estimates below average over primary and secondary resistance."
        )
    else:
        rule = f"≤ {window} days" if resistance.value == "primary" else f"> {window} days"
        head = (
            f"**Resistance to sorafenib: {resistance.value}** — first radiological progression {rule} "
            f"(3 months) after starting sorafenib."
        )
    lines = [head]
    if start.value is not None:
        lines.append(f"- Sorafenib start: {start.value.isoformat()} ({_source_text(start.provenance)})")
    elif start.provenance is not None:
        lines.append(f"- Sorafenib start: {common.md(start.note)}")
    if progression.value is not None:
        lines.append(
            f"- First progression after it: {progression.value.isoformat()} ({_source_text(progression.provenance)})"
        )
    if history.months_to_progression.value is not None:
        lines.append(f"- Interval: {history.months_to_progression.value:.1f} months")
    elif history.progression_day_range is not None:
        low, high = history.progression_day_range
        lines.append(f"- Interval: between {low} and {high} days (the dates are imprecise)")
    if assessment.borderline:
        lines.append(f"- **Borderline:** {common.md(assessment.borderline)}.")
    return lines


def _cell(estimate: SurvivalEstimate) -> str:
    low, high = estimate.median_ci
    ci = f" ({common.months(low)}–{common.months(high)})" if low is not None or high is not None else ""
    return f"{common.months(estimate.median_months)}{ci}"


def _landmarks(estimate: SurvivalEstimate) -> str:
    points = []
    for month in LANDMARKS:
        point = estimate.survival_at.get(month)
        points.append("–" if point is None or point.survival is None else common.pct(point.survival))
    return " / ".join(points)


def _survival_table(assessment: Assessment, survival: RegimenComparison) -> list[str]:
    features = assessment.features
    known = {
        "tumour > 5 cm": features.tumour_size_over_5cm.value,
        "multiple tumours": features.multiple_tumours.value,
    }
    described = "; ".join(
        f"{name}: {'yes' if value else 'no'}"
        if value is not None
        else f"{name}: unknown (averaged over the training cohort)"
        for name, value in known.items()
    )
    training = survival.training
    if training.reconstructed:
        fitted = "Cox models fitted to a cohort reconstructed from the study's published figures, not to patient data"
    else:
        fitted = (
            f"Cox models {common.fitted_how(training, 'their baselines')}: {training.second_line_patients} "
            f"second-line patients, {training.sl_pfs_events} PFS and {training.sl_os_events} OS events"
        )
    return [
        f"**Estimated survival from second-line start for patients like this one** ({fitted}; {described}):",
        "",
        "| Months (95% CI) | TKI alone | TKI + PD-1 inhibitor |",
        "|---|---|---|",
        f"| Median PFS | {_cell(survival.pfs['tki'])} | {_cell(survival.pfs['tki_pd1'])} |",
        f"| PFS at 6 / 12 / 24 mo | {_landmarks(survival.pfs['tki'])} | {_landmarks(survival.pfs['tki_pd1'])} |",
        f"| Median OS | {_cell(survival.os['tki'])} | {_cell(survival.os['tki_pd1'])} |",
        f"| OS at 6 / 12 / 24 mo | {_landmarks(survival.os['tki'])} | {_landmarks(survival.os['tki_pd1'])} |",
    ]


def _study_lines(resistance: str | None) -> list[str]:
    second = load_evidence().second_line
    group = resistance or "all"
    n = second.n[f"{resistance}_combination"] + second.n[f"{resistance}_tki"] if resistance else sum(second.n.values())
    pfs, os_ = second.median_pfs_months[group], second.median_os_months[group]
    cox = second.cox_multivariable
    return [
        f"Study medians ({resistance + '-resistance subgroup' if resistance else 'all second-line patients'}, n = {n}), "
        f"TKI alone vs combination: PFS {pfs['tki']:g} vs {pfs['combination']:g} months; "
        f"OS {os_['tki']:g} vs {os_['combination']:g} months.",
        f"Published Cox HR for TKI alone vs TKI + PD-1: PFS {cox['pfs']['tki_alone'].ratio:.2f} "
        f"({cox['pfs']['tki_alone'].low:.2f}–{cox['pfs']['tki_alone'].high:.2f}); OS {cox['os']['tki_alone'].ratio:.2f} "
        f"({cox['os']['tki_alone'].low:.2f}–{cox['os']['tki_alone'].high:.2f}).",
    ]


def _guideline_lines(assessment: Assessment) -> list[str]:
    """The licensed options after sorafenib the study names, as context (never drafted: not
    screened, and outside the study's comparison), with the patient's AFP for ramucirumab."""
    threshold = RAMUCIRUMAB_AFP_NG_PER_ML
    afp = assessment.features.afp
    if afp.value is None:
        afp_text = f"no usable AFP in the look-back window ({common.md(afp.note or 'not found')})"
    else:
        lab = afp.value
        verdict = _at_least(lab.value, lab.comparator, threshold)
        afp_text = (
            f"this patient's AFP {lab.comparator or ''}{lab.value:g} {lab.unit} ({verdict} ≥ {threshold:g} ng/mL)"
        )
    return [
        "**Guideline context.** Licensed second-line options after sorafenib (named by the study): "
        f"regorafenib, cabozantinib, ramucirumab when AFP ≥ {threshold:g} ng/mL ({afp_text}), pembrolizumab, "
        "nivolumab + ipilimumab. TKI + PD-1 inhibitor after sorafenib reflects the study's practice (two Chinese "
        "centres, retrospective), not a licensed regimen. These options are context only: none is drafted.",
    ]


def _at_least(value: float, comparator: str | None, threshold: float) -> str:
    """'meets', 'below' or 'cannot tell' for value >= threshold, honouring a comparator."""
    if comparator in (">", ">="):
        return "meets" if value >= threshold else "cannot tell"
    if comparator in ("<", "<="):
        return "below" if value < threshold or (comparator == "<" and value == threshold) else "cannot tell"
    return "meets" if value >= threshold else "below"


def _not_applicable(assessment: Assessment, ctx: CardContext) -> Card:
    return common.not_applicable_card(
        ctx,
        assessment,
        kind=KIND_OUT_OF_SCOPE,
        topic=TOPIC,
        what="Second-line survival estimate",
        population=(
            "The survival models were developed in HCC of HBV/HCV aetiology, Child-Pugh A or B, without "
            "surgery, treated after sorafenib failure."
        ),
    )
