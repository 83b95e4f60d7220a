"""Scenario B — a TKI ordered after sorafenib: resistance type and second-line survival estimates."""

from __future__ import annotations

from fhir_mappers.features import Provenance
from hcc_evidence import load_evidence
from models.assessment import Assessment
from models.registry import RegimenComparison, SurvivalEstimate

from . import common, i18n
from .context import CardContext
from .i18n import N_, _
from .names import drug_name
from .notes import say
from .schema import Card, Coding
from .suggestions import add_order, is_coded

KIND = "second-line-tki-pd1"
KIND_OUT_OF_SCOPE = "second-line-not-applicable"
TOPIC = N_("Second-line survival: TKI alone vs TKI + PD-1 inhibitor")
LANDMARKS = (6, 12, 24)
# Ramucirumab's criterion after sorafenib, as the evidence brief lists the FDA-approved options.
RAMUCIRUMAB_AFP_NG_PER_ML = 400.0
MAX_PD1_SUGGESTIONS = 4


def override_reasons() -> list[Coding]:
    return [
        common.override_reason("contraindication-pd1", _("Contraindication to a PD-1 inhibitor")),
        common.override_reason("pd1-unavailable", _("PD-1 inhibitor not available or not reimbursed")),
        *common.common_override_reasons(),
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
    headline = {
        "primary": N_("Primary sorafenib resistance"),
        "secondary": N_("Secondary sorafenib resistance"),
        None: N_("Sorafenib resistance type unclear"),
    }[resistance]
    headline = _(headline)
    if resistance and assessment.borderline:
        headline = _("%(headline)s (borderline)", headline=headline)
    summary = _(
        "%(headline)s: est. median OS %(combo)s vs %(tki)s mo with TKI + PD-1 vs TKI alone",
        headline=headline,
        combo=common.months(os_combo),
        tki=common.months(os_tki),
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
        _(
            "**Evidence caveats.** The study's regimen comparison is observational, not randomised: %(combo)s "
            "combination vs %(tki)s TKI-alone patients. %(caveat)s. Model discrimination is modest (C-index PFS "
            "%(pfs)s, OS %(os)s, optimism-corrected, on %(data)s).",
            combo=n["primary_combination"] + n["secondary_combination"],
            tki=n["primary_tki"] + n["secondary_tki"],
            caveat=common.cohort_caveat(),
            pfs=f"{survival.c_index['pfs']:.2f}",
            os=f"{survival.c_index['os']:.2f}",
            data=_("the reconstructed cohort") if survival.training.reconstructed else _("the data it was fitted to"),
        ),
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
        detail.insert(
            0, _("A PD-1 inhibitor is already among the draft orders; estimates shown for information.") + "\n"
        )
        if not pd1.offered:  # the clinician's own draft meets a contraindication: say so loudly
            indicator = "warning"
            summary = _(
                "Drafted PD-1 inhibitor: the record shows %(finding)s (see card)",
                finding=say(pd1.contraindications[0].what),
            )
            why = "; ".join(common.reason_text(r) for r in pd1.contraindications)
            detail.insert(
                0, _("**Check the drafted PD-1 inhibitor: the record argues against it** — %(why)s.", why=why) + "\n"
            )
    elif pd1.offered and assessment.drafts_withheld is None:
        drugs = [d for d in _pd1_candidates(ctx) if is_coded(ctx, d)][:MAX_PD1_SUGGESTIONS]
        suggestions = [
            add_order(
                ctx, KIND, common.suggestion_label(_("Add a PD-1 inhibitor: %(drug)s", drug=drug_name(drug)), pd1), drug
            )
            for drug in drugs
        ] or None
    return common.card(
        ctx,
        kind=KIND,
        topic=_(TOPIC),
        model_version=assessment.model_version,
        summary=summary,
        detail=detail,
        indicator=indicator,
        suggestions=suggestions,
        overrideReasons=override_reasons() if suggestions or indicator == "warning" else None,
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
        return _("source unknown")
    return common.md(
        f"{prov.resource_type}/{prov.resource_id}" + (f", {prov.effective_source}" if prov.effective_source else "")
    )


def _classification_lines(assessment: Assessment) -> list[str]:
    history = assessment.history
    resistance = history.resistance_type
    start, progression = history.sorafenib_start, history.first_progression_after_sorafenib
    window = history.primary_window_days
    if resistance.value is None:
        head = _(
            "**Resistance type could not be determined** (%(why)s): %(note)s. The estimates below average over "
            "primary and secondary resistance.",
            why=common.missing_reason(resistance.missing.value) if resistance.missing else _("unknown"),
            note=common.md(say(resistance.note)),
        )
    elif resistance.value == "primary":
        head = _(
            "**Resistance to sorafenib: primary** — first radiological progression ≤ %(days)s days (3 months) "
            "after starting sorafenib.",
            days=window,
        )
    else:
        head = _(
            "**Resistance to sorafenib: secondary** — first radiological progression > %(days)s days (3 months) "
            "after starting sorafenib.",
            days=window,
        )
    lines = [head]
    if start.value is not None:
        lines.append(
            _(
                "- Sorafenib start: %(date)s (%(source)s)",
                date=i18n.day(start.value),
                source=_source_text(start.provenance),
            )
        )
    elif start.provenance is not None:
        lines.append(_("- Sorafenib start: %(note)s", note=common.md(say(start.note))))
    if progression.value is not None:
        lines.append(
            _(
                "- First progression after it: %(date)s (%(source)s)",
                date=i18n.day(progression.value),
                source=_source_text(progression.provenance),
            )
        )
    if history.months_to_progression.value is not None:
        lines.append(_("- Interval: %(months)s months", months=i18n.decimal(history.months_to_progression.value, 1)))
    elif history.progression_day_range is not None:
        low, high = history.progression_day_range
        lines.append(_("- Interval: between %(low)s and %(high)s days (the dates are imprecise)", low=low, high=high))
    if assessment.borderline:
        lines.append(_("- **Borderline:** %(why)s.", why=common.md(say(assessment.borderline))))
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
        _("tumour > 5 cm"): features.tumour_size_over_5cm.value,
        _("multiple tumours"): features.multiple_tumours.value,
    }
    described = "; ".join(
        _("%(name)s: unknown (averaged over the training cohort)", name=name)
        if value is None
        else _("%(name)s: %(answer)s", name=name, answer=_("yes") if value else _("no"))
        for name, value in known.items()
    )
    training = survival.training
    if training.reconstructed:
        fitted = _(
            "Cox models fitted to a cohort reconstructed from the study's published figures, not to patient data"
        )
    else:
        baselines = _("their baselines")
        fitted = _(
            "Cox models %(fitted)s: %(patients)s second-line patients, %(pfs)s PFS and %(os)s OS events",
            fitted=common.fitted_how(training, baselines),
            patients=training.second_line_patients,
            pfs=training.sl_pfs_events,
            os=training.sl_os_events,
        )
    return [
        _(
            "**Estimated survival from second-line start for patients like this one** (%(fitted)s; %(described)s):",
            fitted=fitted,
            described=described,
        ),
        "",
        _("| Months (95%% CI) | TKI alone | TKI + PD-1 inhibitor |"),
        "|---|---|---|",
        *(
            f"| {_(title)} | {cell(arms['tki'])} | {cell(arms['tki_pd1'])} |"
            for title, arms, cell in (
                (N_("Median PFS"), survival.pfs, _cell),
                (N_("PFS at 6 / 12 / 24 mo"), survival.pfs, _landmarks),
                (N_("Median OS"), survival.os, _cell),
                (N_("OS at 6 / 12 / 24 mo"), survival.os, _landmarks),
            )
        ),
    ]


def _study_lines(resistance: str | None) -> list[str]:
    second = load_evidence().second_line
    group = resistance or "all"
    n = second.n[f"{resistance}_combination"] + second.n[f"{resistance}_tki"] if resistance else sum(second.n.values())
    pfs, os_ = second.median_pfs_months[group], second.median_os_months[group]
    cox = second.cox_multivariable
    subgroup = {
        "primary": N_("primary-resistance subgroup"),
        "secondary": N_("secondary-resistance subgroup"),
        None: N_("all second-line patients"),
    }[resistance]
    hr_pfs, hr_os = cox["pfs"]["tki_alone"], cox["os"]["tki_alone"]
    return [
        _(
            "Study medians (%(group)s, n = %(n)s), TKI alone vs combination: PFS %(pfs_tki)s vs %(pfs_combo)s "
            "months; OS %(os_tki)s vs %(os_combo)s months.",
            group=_(subgroup),
            n=n,
            pfs_tki=f"{pfs['tki']:g}",
            pfs_combo=f"{pfs['combination']:g}",
            os_tki=f"{os_['tki']:g}",
            os_combo=f"{os_['combination']:g}",
        ),
        _(
            "Published Cox HR for TKI alone vs TKI + PD-1: PFS %(pfs)s (%(pfs_low)s–%(pfs_high)s); OS %(os)s "
            "(%(os_low)s–%(os_high)s).",
            pfs=f"{hr_pfs.ratio:.2f}",
            pfs_low=f"{hr_pfs.low:.2f}",
            pfs_high=f"{hr_pfs.high:.2f}",
            os=f"{hr_os.ratio:.2f}",
            os_low=f"{hr_os.low:.2f}",
            os_high=f"{hr_os.high:.2f}",
        ),
    ]


def _guideline_lines(assessment: Assessment) -> list[str]:
    """The licensed options after sorafenib the study names, as context (never drafted: not
    screened, and outside the study's comparison), with the patient's AFP for ramucirumab."""
    threshold = RAMUCIRUMAB_AFP_NG_PER_ML
    afp = assessment.features.afp
    if afp.value is None:
        afp_text = _("no usable AFP in the look-back window (%(why)s)", why=common.md(say(afp.note) or _("not found")))
    else:
        lab = afp.value
        value = f"{lab.comparator or ''}{lab.value:g} {lab.unit}"
        if lab.from_text and afp.provenance is not None:  # as on the first-line card: not a coded quantity
            text = common.md(afp.provenance.original_value)
            value = _("%(value)s, read from the text result '%(text)s'", value=value, text=text)
        afp_text = _(
            "this patient's AFP %(value)s (%(verdict)s ≥ %(threshold)s ng/mL)",
            value=value,
            verdict=_at_least(lab.value, lab.comparator, threshold),
            threshold=f"{threshold:g}",
        )
    return [
        _(
            "**Guideline context.** Licensed second-line options after sorafenib (named by the study): regorafenib, "
            "cabozantinib, ramucirumab when AFP ≥ %(threshold)s ng/mL (%(afp)s), pembrolizumab, nivolumab + "
            "ipilimumab. TKI + PD-1 inhibitor after sorafenib reflects the study's practice (two Chinese centres, "
            "retrospective), not a licensed regimen. These options are context only: none is drafted.",
            threshold=f"{threshold:g}",
            afp=afp_text,
        ),
    ]


def _at_least(value: float, comparator: str | None, threshold: float) -> str:
    """'meets', 'below' or 'cannot tell' for value >= threshold, honouring a comparator."""
    if comparator in (">", ">="):
        return _("meets") if value >= threshold else _("cannot tell")
    if comparator in ("<", "<="):
        return _("below") if value < threshold or (comparator == "<" and value == threshold) else _("cannot tell")
    return _("meets") if value >= threshold else _("below")


def _not_applicable(assessment: Assessment, ctx: CardContext) -> Card:
    return common.not_applicable_card(
        ctx,
        assessment,
        kind=KIND_OUT_OF_SCOPE,
        topic=_(TOPIC),
        what=_("Second-line survival estimate"),
        population=_(
            "The survival models were developed in HCC of HBV/HCV aetiology, Child-Pugh A or B, without "
            "surgery, treated after sorafenib failure."
        ),
    )
