"""Scenario A — sorafenib ordered first line: risk of primary resistance (Lei et al. 2025)."""

from __future__ import annotations

from fhir_mappers.features import Feature, LabValue
from hcc_evidence import RatioWithCI, load_evidence
from models import screening
from models.assessment import Assessment
from models.registry import RiskEstimate

from . import common
from .context import CardContext
from .i18n import N_, _
from .names import regimen_name
from .notes import say
from .schema import Card, Coding, Suggestion
from .suggestions import is_coded, replace_order

KIND = "sorafenib-primary-resistance"
KIND_MISSING = "sorafenib-resistance-missing-data"
KIND_OUT_OF_SCOPE = "sorafenib-resistance-not-applicable"
TOPIC = N_("Risk of primary sorafenib resistance")

MARKERS = {
    "afp_over_400": (N_("AFP"), "afp", "> 400 ng/mL"),
    "alt_over_40": (N_("ALT"), "alt", "> 40 U/L"),
}

# Regimen (as models.screening names it) -> the drugs its draft orders create.
ALTERNATIVES = {
    screening.LENVATINIB: ["lenvatinib"],
    screening.ATEZO_BEV: ["atezolizumab", "bevacizumab"],
}


def override_reasons() -> list[Coding]:
    return [
        common.override_reason(
            "contraindication-alternatives", _("Contraindication to lenvatinib or atezolizumab + bevacizumab")
        ),
        common.override_reason("alternatives-unavailable", _("Alternatives not available or not reimbursed")),
        *common.common_override_reasons(),
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
    drivers = {
        0: lambda: _("AFP and ALT not raised"),
        1: lambda: _("%(marker)s high", marker=_(MARKERS[high[0]][0])),
        2: lambda: _("AFP and ALT high"),
    }[len(high)]()
    # An estimate against the base rate, in words no stronger than a two-marker model supports.
    training = risk.training
    numbers = {
        "risk": common.pct(risk.probability),
        "low": common.pct(risk.ci_low),
        "high": common.pct(risk.ci_high),
        "base": common.pct(risk.base_rate, 1),
        "drivers": drivers,
    }
    if training.reconstructed:
        summary = _(
            "Estimated primary sorafenib resistance risk %(risk)s (95%% CI %(low)s–%(high)s) vs %(base)s cohort; "
            "%(drivers)s",
            **numbers,
        )
    else:
        summary = _(
            "Estimated primary sorafenib resistance risk %(risk)s (95%% CI %(low)s–%(high)s) vs %(base)s training "
            "cohort; %(drivers)s",
            **numbers,
        )
    study = evidence.cohort
    detail = [
        *common.withheld_line(assessment.drafts_withheld),
        _(
            "**Estimated risk of primary resistance** (radiological progression within 3 months of starting "
            "sorafenib): **%(risk)s** (95%% CI %(low)s–%(high)s). Rate in the data the model was fitted to: "
            "%(events)s/%(n)s (%(base)s); the study: %(study_events)s/%(study_n)s (%(study_rate)s).",
            risk=common.pct(risk.probability),
            low=common.pct(risk.ci_low),
            high=common.pct(risk.ci_high),
            events=training.primary_resistance,
            n=training.n,
            base=common.pct(training.base_rate, 1),
            study_events=study.n_primary,
            study_n=study.n,
            study_rate=common.pct(study.n_primary / study.n, 1),
        ),
        "",
        _("| Marker (threshold) | Patient value, as received | Date | Source | Above threshold |"),
        "|---|---|---|---|---|",
        *(_marker_row(assessment, name) for name in MARKERS),
        "",
        _model_line(risk, evidence.resistance_model_multivariable),
        "",
        _(
            "**The evidence is weak.** Discrimination is modest: AUC %(auc)s (95%% CI %(low)s–%(high)s), corrected "
            "by bootstrap for the optimism of measuring it on the data the model was fitted to%(cv)s; the authors "
            "call the predictive value of these markers limited. %(caveat)s. Use it as one input to the decision, "
            "not as a rule.",
            auc=f"{risk.auc:.2f}",
            low=f"{risk.auc_ci[0]:.2f}",
            high=f"{risk.auc_ci[1]:.2f}",
            cv=_(" (10-fold cross-validated AUC %(auc)s)", auc=f"{risk.auc_cv:.2f}") if risk.auc_cv is not None else "",
            caveat=common.cohort_caveat(),
        ),
    ]
    suggestions: list[Suggestion] = []
    if len(high) >= ctx.alternatives_min_high_markers:
        detail += [
            "",
            _(
                "With both markers high, the authors suggest considering first-line alternatives such as "
                "lenvatinib or atezolizumab + bevacizumab."
            ),
            *common.screening_lines(assessment.screens),
        ]
        if assessment.drafts_withheld is None:
            suggestions = [
                replace_order(
                    ctx,
                    KIND,
                    common.suggestion_label(
                        _("Replace sorafenib with %(regimen)s", regimen=regimen_name(screen.regimen)), screen
                    ),
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
        topic=_(TOPIC),
        model_version=assessment.model_version,
        summary=summary,
        detail=detail,
        indicator="warning" if len(high) == 2 else "info",
        suggestions=suggestions,
        overrideReasons=override_reasons(),
    )


def _model_line(risk: RiskEstimate, published: dict[str, RatioWithCI]) -> str:
    """What the model is and what it was fitted to, from its artifact; the study's ORs as the study's."""
    training = risk.training
    afp, alt = published["afp_over_400"], published["alt_over_40"]
    ors = {
        "afp": f"{afp.ratio:.2f}",
        "afp_low": f"{afp.low:.2f}",
        "afp_high": f"{afp.high:.2f}",
        "alt": f"{alt.ratio:.2f}",
        "alt_low": f"{alt.low:.2f}",
        "alt_high": f"{alt.high:.2f}",
        "model": risk.model_version,
    }
    if training.reconstructed:
        return _(
            "Model: logistic regression on AFP > 400 ng/mL (published OR %(afp)s, 95%% CI %(afp_low)s–%(afp_high)s) "
            "and ALT > 40 U/L (OR %(alt)s, %(alt_low)s–%(alt_high)s), refitted to a cohort reconstructed from the "
            "study's published figures (model %(model)s).",
            **ors,
        )
    intercept = _("its intercept")
    return _(
        "Model: logistic regression on AFP > 400 ng/mL and ALT > 40 U/L, %(fitted)s (n = %(n)s, %(events)s with "
        "primary resistance; model %(model)s). The study's published ORs: AFP %(afp)s (95%% CI "
        "%(afp_low)s–%(afp_high)s), ALT %(alt)s (%(alt_low)s–%(alt_high)s).",
        fitted=common.fitted_how(training, intercept),
        n=training.n,
        events=training.primary_resistance,
        **ors,
    )


def _marker_row(assessment: Assessment, name: str) -> str:
    label, lab_name, threshold = MARKERS[name]
    flag: Feature[bool] = getattr(assessment.features, name)
    lab: Feature[LabValue] = getattr(assessment.features, lab_name)
    prov = flag.provenance or lab.provenance
    if prov is None:
        why = common.md(say(flag.note) or _("not found"))
        return _(
            "| %(marker)s (%(threshold)s) | not available | – | – | unknown: %(why)s |",
            marker=_(label),
            threshold=threshold,
            why=why,
        )
    shown = f"{prov.original_value:g}" if isinstance(prov.original_value, float) else prov.original_value
    value = f"{prov.comparator or ''}{shown} {prov.original_unit or ''}".strip()
    converted = lab.value
    compared = f"{converted.comparator or ''}{converted.value:.4g} {converted.unit}" if converted else ""
    if converted is not None and converted.from_text:  # not a coded quantity: the clinician checks the reading
        value = _("%(value)s, read from the text result '%(text)s'", value=compared, text=value)
    elif converted is not None and f"{converted.value:g} {converted.unit}" != f"{shown} {prov.original_unit}":
        value += f" (= {compared})"  # the value compared
    code = f" ({common.code_label(prov.coding.system, prov.coding.code)})" if prov.coding and prov.coding.code else ""
    answer = {True: _("**yes**"), False: _("no"), None: _("unknown: %(why)s", why=common.md(say(flag.note)))}[
        flag.value
    ]
    source = common.md(f"{prov.resource_type}/{prov.resource_id}{code}")
    return (
        f"| {_(label)} ({threshold}) | {common.md(value)} | {common.md(prov.effective or '–')} | {source} | {answer} |"
    )


def _missing_markers(assessment: Assessment, ctx: CardContext) -> Card:
    missing = assessment.missing_markers
    names = _(" and ").join(_(MARKERS[name][0]) for name in missing)
    days = ctx.lab_lookback_days
    return common.card(
        ctx,
        kind=KIND_MISSING,
        topic=_(TOPIC),
        model_version=assessment.model_version,
        summary=_(
            "Sorafenib resistance risk not estimated: needs %(markers)s from the last %(days)s days",
            markers=names,
            days=days,
        ),
        detail=[
            _(
                "The primary-resistance estimate needs both AFP and ALT measured within %(days)s days before the "
                "sorafenib order (the study took baseline values at treatment start). No score is shown: a missing "
                "marker is not treated as normal.",
                days=days,
            ),
            "",
            *(
                f"- **{_(MARKERS[name][0])}**: {common.missing_reason(f.missing.value if f.missing else None)} — "
                f"{common.md(say(f.note))}"
                for name, f in missing.items()
            ),
            "",
            _(
                "Order or record a current AFP (ng/mL or IU/mL) and ALT (U/L), then re-open the order to see the "
                "estimate."
            ),
            *common.missing_data_lines(assessment.missing_data),
        ],
    )


def _not_applicable(assessment: Assessment, ctx: CardContext) -> Card:
    return common.not_applicable_card(
        ctx,
        assessment,
        kind=KIND_OUT_OF_SCOPE,
        topic=_(TOPIC),
        what=_("Sorafenib resistance estimate"),
        population=_(
            "The published model was developed in adults with unresectable or advanced HCC of HBV/HCV "
            "aetiology, Child-Pugh A or B, without surgery, starting first-line sorafenib."
        ),
    )
