"""The SMART app's wording outside its templates: row labels, chart titles, curve labels, notices
and error messages. Kept here, beside the cards' wording, so one catalogue holds every word a
clinician reads; ``cds_service.smart`` only calls these within ``cards.i18n.using``."""

from __future__ import annotations

from .i18n import N_, _, decimal

FEATURE_LABELS = {
    "afp": N_("AFP"),
    "alt": N_("ALT"),
    "ast": N_("AST"),
    "bilirubin": N_("Total bilirubin"),
    "albumin": N_("Albumin"),
    "platelets": N_("Platelets"),
    "inr": N_("INR"),
    "tumour_size_cm": N_("Largest tumour diameter (cm)"),
    "tumour_count": N_("Number of tumours"),
    "vascular_invasion": N_("Vascular invasion"),
    "extrahepatic_metastasis": N_("Extrahepatic metastasis"),
    "hcc_diagnosis": N_("HCC diagnosis"),
    "aetiology": N_("Aetiology"),
    "cirrhosis": N_("Cirrhosis"),
    "child_pugh_class": N_("Child-Pugh class"),
    "bclc_stage": N_("BCLC stage"),
    "prior_hcc_surgery": N_("Prior HCC surgery"),
}
HISTORY_LABELS = {
    "sorafenib_start": N_("Sorafenib started"),
    "first_progression_after_sorafenib": N_("First progression after sorafenib"),
    "months_to_progression": N_("Months from sorafenib start to progression"),
    "resistance_type": N_("Resistance to sorafenib"),
}
ENDPOINTS = {"pfs": N_("Progression-free survival"), "os": N_("Overall survival")}
ARMS = {"tki": N_("TKI alone"), "tki_pd1": N_("TKI + PD-1 inhibitor")}
RESISTANCE = {"primary": N_("primary"), "secondary": N_("secondary")}
MARKER_INPUTS = (N_("AFP > 400 ng/mL"), N_("ALT > 40 U/L"))

# Error pages (cds_service.smart.views), by what went wrong.
ERRORS = {
    "no_iss": N_("This app must be launched from the EHR (no iss was given)."),
    "iss_refused": N_("This app is not registered with that FHIR server."),
    "busy": N_("The app is waiting on the EHR for other launches; try again in a few seconds."),
    "no_code": N_("Open this app from the EHR; it reads the patient only after a SMART launch."),
    "expired": N_("This launch has expired or was already used. Launch the app again from the EHR."),
    "no_patient": N_("The EHR did not say which patient to show (no patient in the launch context)."),
}


def labels(keys: dict[str, str]) -> dict[str, str]:
    """One of the label tables above, in the current language."""
    return {key: _(label) for key, label in keys.items()}


def yes_no(value: bool) -> str:
    return _("yes") if value else _("no")


def unnamed_patient() -> str:
    return _("Unnamed patient")


def not_found() -> str:
    return _("not found")


def reference_curve_label(arm: str, resistance: str | None, n: object) -> str:
    if resistance in RESISTANCE:
        return _(
            "Training cohort, %(resistance)s resistance, %(arm)s (n=%(n)s)",
            resistance=_(RESISTANCE[resistance]),
            arm=_(ARMS[arm]),
            n=n,
        )
    return _("Training cohort, %(arm)s (n=%(n)s)", arm=_(ARMS[arm]), n=n)


def axis_labels() -> tuple[str, str]:
    """The survival charts' axes: (x, y)."""
    return _("Months"), _("Probability")


def curve_median(curve: str, months: float | None) -> str:
    if months is None:
        return _("%(curve)s: median not reached", curve=curve)
    return _("%(curve)s: median %(months)s months", curve=curve, months=decimal(months, 1))


def chart_description(title: str, medians: list[str], bands: bool) -> str:
    """A chart's ``<desc>``: what a screen reader says instead of drawing the curves."""
    text = _("%(title)s, probability against months. %(medians)s.", title=title, medians=_("; ").join(medians))
    return _("%(text)s Shaded areas are 95%% confidence bands.", text=text) if bands else text


def risk_needs_markers() -> str:
    return _("AFP and ALT within the look-back window are both needed for the estimate.")


def risk_first_line_only() -> str:
    return _("The primary-resistance estimate applies when sorafenib is ordered as first-line therapy.")


def survival_needs_resistance_type() -> str:
    return _(
        "Second-line survival estimates need the resistance type (sorafenib start and first radiological progression)."
    )


def survival_after_failure_only() -> str:
    return _("Second-line survival estimates apply when a TKI is ordered after sorafenib failure.")


def fitted_to_reconstruction() -> str:
    return _("a cohort reconstructed from the study's published aggregates (no patient-level data were published)")


def fitted_to_data(source: str, n: int, created: str) -> str:
    return _("%(source)s (n = %(n)s, trained %(date)s), not the study's cohort", source=source, n=n, date=created)


def rates(events: int, n: int, rate: str, study_events: int, study_n: int, study_rate: str) -> str:
    return _(
        "Rate in the data the model was fitted to: %(events)s/%(n)s (%(rate)s); the study: "
        "%(study_events)s/%(study_n)s (%(study_rate)s).",
        events=events,
        n=n,
        rate=rate,
        study_events=study_events,
        study_n=study_n,
        study_rate=study_rate,
    )


def model_card_title() -> str:
    return _("Model card — HCC sorafenib CDS")


def error(key: str) -> str:
    return _(ERRORS[key])


def authorization_refused(reason: str) -> str:
    return _("Authorization was not granted: %(reason)s", reason=reason)


def unreadable_context(problem: str) -> str:
    return _("The card's context could not be read: %(problem)s.", problem=problem)
