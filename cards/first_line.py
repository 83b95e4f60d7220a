"""Scenario A — sorafenib ordered first line: risk of primary resistance (Lei et al. 2025)."""

from __future__ import annotations

from fhir_mappers.features import Feature
from hcc_evidence import load_evidence
from models import screening
from models.assessment import Assessment
from models.registry import RiskEstimate

from . import common
from .context import CardContext
from .schema import Card, Suggestion
from .suggestions import is_coded, replace_order

KIND = "sorafenib-primary-resistance"
KIND_MISSING = "sorafenib-resistance-missing-data"
KIND_OUT_OF_SCOPE = "sorafenib-resistance-not-applicable"
TOPIC = "Risk of primary sorafenib resistance"

MARKERS = {
    "afp_over_400": ("AFP", "afp", "> 400 ng/mL"),
    "alt_over_40": ("ALT", "alt", "> 40 U/L"),
}

# Regimen (as models.screening names it) -> the drugs its draft orders create.
ALTERNATIVES = {
    screening.LENVATINIB: ["lenvatinib"],
    screening.ATEZO_BEV: ["atezolizumab", "bevacizumab"],
}

OVERRIDE_REASONS = [
    common.override_reason(
        "contraindication-alternatives", "Contraindication to lenvatinib or atezolizumab + bevacizumab"
    ),
    common.override_reason("alternatives-unavailable", "Alternatives not available or not reimbursed"),
    *common.COMMON_OVERRIDE_REASONS,
]


def first_line_cards(assessment: Assessment, ctx: CardContext) -> list[Card]:
    if assessment.out_of_scope:
        return [_not_applicable(assessment, ctx)]
    if assessment.risk is None:
        return [_missing_markers(assessment, ctx)]
    high = [name for name in MARKERS if getattr(assessment.features, name).value]
    if not high and not ctx.quiet_low_risk_card:
        return []
    return [_risk_card(assessment, assessment.risk, high, ctx)]


def _risk_card(assessment: Assessment, risk: RiskEstimate, high: list[str], ctx: CardContext) -> Card:
    evidence = load_evidence()
    labels = [MARKERS[name][0] for name in high]
    drivers = {0: "AFP and ALT not raised", 1: f"{labels[0] if labels else ''} high", 2: "AFP and ALT high"}[len(high)]
    # An estimate against the base rate, in words no stronger than a two-marker model supports.
    training = risk.training
    cohort = "cohort" if training.reconstructed else "training cohort"
    summary = (
        f"Estimated primary sorafenib resistance risk {common.pct(risk.probability)} (95% CI {common.pct(risk.ci_low)}–{common.pct(risk.ci_high)}) "
        f"vs {common.pct(risk.base_rate, 1)} {cohort}; {drivers}"
    )
    study = evidence.cohort
    detail = [
        *common.withheld_line(assessment.drafts_withheld),
        "**Estimated risk of primary resistance** (radiological progression within 3 months of starting "
        f"sorafenib): **{common.pct(risk.probability)}** (95% CI {common.pct(risk.ci_low)}–{common.pct(risk.ci_high)}). "
        f"Rate in the data the model was fitted to: {training.primary_resistance}/{training.n} "
        f"({common.pct(training.base_rate, 1)}); the study: {study.n_primary}/{study.n} "
        f"({common.pct(study.n_primary / study.n, 1)}).",
        "",
        "| Marker (threshold) | Patient value, as received | Date | Source | Above threshold |",
        "|---|---|---|---|---|",
        *(_marker_row(assessment, name) for name in MARKERS),
        "",
        _model_line(risk, evidence.resistance_model_multivariable),
        "",
        f"**The evidence is weak.** Discrimination is modest: AUC {risk.auc:.2f} (95% CI {risk.auc_ci[0]:.2f}–{risk.auc_ci[1]:.2f}), "
        "corrected by bootstrap for the optimism of measuring it on the data the model was fitted to"
        + (f" (10-fold cross-validated AUC {risk.auc_cv:.2f})" if risk.auc_cv is not None else "")
        + "; "
        f"the authors call the predictive value of these markers limited. {common.cohort_caveat()}. "
        "Use it as one input to the decision, not as a rule.",
    ]
    suggestions: list[Suggestion] = []
    if len(high) >= ctx.alternatives_min_high_markers:
        detail += [
            "",
            "With both markers high, the authors suggest considering first-line alternatives such as "
            "lenvatinib or atezolizumab + bevacizumab.",
            *common.screening_lines(assessment.screens),
        ]
        if assessment.drafts_withheld is None:
            suggestions = [
                replace_order(
                    ctx,
                    KIND,
                    common.suggestion_label(f"Replace sorafenib with {screen.regimen}", screen),
                    assessment.ordered_reference,
                    ALTERNATIVES[screen.regimen],
                )
                for screen in assessment.screens
                if screen.offered and all(is_coded(ctx, drug) for drug in ALTERNATIVES[screen.regimen])
            ]
    detail += common.caveat_lines(assessment.caveats) + common.missing_data_lines(assessment.missing_data)
    return common.card(
        ctx,
        kind=KIND,
        topic=TOPIC,
        model_version=assessment.model_version,
        summary=summary,
        detail=detail,
        indicator="warning" if len(high) == 2 else "info",
        suggestions=suggestions,
        overrideReasons=OVERRIDE_REASONS,
    )


def _model_line(risk: RiskEstimate, published) -> str:
    """What the model is and what it was fitted to, from its artifact; the study's ORs as the study's."""
    training = risk.training
    afp, alt = published["afp_over_400"], published["alt_over_40"]
    if training.reconstructed:
        return (
            "Model: logistic regression on AFP > 400 ng/mL (published OR "
            f"{afp.ratio:.2f}, 95% CI {afp.low:.2f}–{afp.high:.2f}) "
            f"and ALT > 40 U/L (OR {alt.ratio:.2f}, {alt.low:.2f}–{alt.high:.2f}), "
            f"refitted to a cohort reconstructed from the study's published figures (model {risk.model_version})."
        )
    return (
        f"Model: logistic regression on AFP > 400 ng/mL and ALT > 40 U/L, {common.fitted_how(training, 'its intercept')} "
        f"(n = {training.n}, {training.primary_resistance} with primary resistance; model {risk.model_version}). "
        f"The study's published ORs: AFP {afp.ratio:.2f} (95% CI {afp.low:.2f}–{afp.high:.2f}), "
        f"ALT {alt.ratio:.2f} ({alt.low:.2f}–{alt.high:.2f})."
    )


def _marker_row(assessment: Assessment, name: str) -> str:
    label, lab_name, threshold = MARKERS[name]
    flag: Feature = getattr(assessment.features, name)
    lab: Feature = getattr(assessment.features, lab_name)
    prov = flag.provenance or lab.provenance
    if prov is None:
        return f"| {label} ({threshold}) | not available | – | – | unknown: {common.md(flag.note or 'not found')} |"
    shown = f"{prov.original_value:g}" if isinstance(prov.original_value, float) else prov.original_value
    value = f"{prov.comparator or ''}{shown} {prov.original_unit or ''}".strip()
    converted = lab.value
    if converted is not None and f"{converted.value:g} {converted.unit}" != f"{shown} {prov.original_unit}":
        value += f" (= {converted.comparator or ''}{converted.value:.4g} {converted.unit})"  # the value compared
    code = f" ({common.code_label(prov.coding.system, prov.coding.code)})" if prov.coding and prov.coding.code else ""
    answer = {True: "**yes**", False: "no", None: f"unknown: {common.md(flag.note)}"}[flag.value]
    source = common.md(f"{prov.resource_type}/{prov.resource_id}{code}")
    return f"| {label} ({threshold}) | {common.md(value)} | {common.md(prov.effective or '–')} | {source} | {answer} |"


def _missing_markers(assessment: Assessment, ctx: CardContext) -> Card:
    missing = assessment.missing_markers
    names = " and ".join(MARKERS[name][0] for name in missing)
    return common.card(
        ctx,
        kind=KIND_MISSING,
        topic=TOPIC,
        model_version=assessment.model_version,
        summary=f"Sorafenib resistance risk not estimated: needs {names} from the last {ctx.lab_lookback_days} days",
        detail=[
            f"The primary-resistance estimate needs both AFP and ALT measured within {ctx.lab_lookback_days} days "
            "before the sorafenib order (the study took baseline values at treatment start). "
            "No score is shown: a missing marker is not treated as normal.",
            "",
            *(
                f"- **{MARKERS[name][0]}**: {(f.missing.value if f.missing else 'missing').replace('_', ' ')} — {common.md(f.note)}"
                for name, f in missing.items()
            ),
            "",
            "Order or record a current AFP (ng/mL or IU/mL) and ALT (U/L), then re-open the order to see the estimate.",
            *common.missing_data_lines(assessment.missing_data),
        ],
    )


def _not_applicable(assessment: Assessment, ctx: CardContext) -> Card:
    return common.not_applicable_card(
        ctx,
        assessment,
        kind=KIND_OUT_OF_SCOPE,
        topic=TOPIC,
        what="Sorafenib resistance estimate",
        population=(
            "The published model was developed in adults with unresectable or advanced HCC of HBV/HCV "
            "aetiology, Child-Pugh A or B, without surgery, starting first-line sorafenib."
        ),
    )
