"""Adapter between the shared assessment and what the app page shows.

The app must show the assessment the card showed, so it calls the same function the cards use,
``models.assessment.assess``, with the hook pipeline's own model bundle and terminology. Without a
draft order in the launch context it maps the record and asks the same bundle directly. The page
only reads ``AppView``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from fhir_mappers.orders import classify_draft_orders
from fhir_mappers.patient import map_patient_features, map_treatment_history
from hcc_evidence import load_evidence
from models.assessment import assess

from .context import AppContext

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

FEATURE_LABELS = {
    "afp": "AFP",
    "alt": "ALT",
    "ast": "AST",
    "bilirubin": "Total bilirubin",
    "albumin": "Albumin",
    "platelets": "Platelets",
    "inr": "INR",
    "tumour_size_cm": "Largest tumour diameter (cm)",
    "tumour_count": "Number of tumours",
    "vascular_invasion": "Vascular invasion",
    "extrahepatic_metastasis": "Extrahepatic metastasis",
    "hcc_diagnosis": "HCC diagnosis",
    "aetiology": "Aetiology",
    "cirrhosis": "Cirrhosis",
    "child_pugh_class": "Child-Pugh class",
    "bclc_stage": "BCLC stage",
    "prior_hcc_surgery": "Prior HCC surgery",
}
ENDPOINTS = {"pfs": "Progression-free survival", "os": "Overall survival"}
ARMS = {"tki": "TKI alone", "tki_pd1": "TKI + PD-1 inhibitor"}


class FeatureRow(BaseModel):
    key: str
    label: str
    value: str | None = None
    source: str | None = None
    date: str | None = None
    missing: str | None = None


class Curve(BaseModel):
    label: str
    times: list[float]
    survival: list[float]
    low: list[float] | None = None
    high: list[float] | None = None
    median_months: float | None = None


class SurvivalPanel(BaseModel):
    endpoint: str  # "pfs" | "os"
    title: str
    curves: list[Curve]
    reference: list[Curve] = Field(default_factory=list)


class RiskView(BaseModel):
    probability: float
    ci_low: float
    ci_high: float
    base_rate: float
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    inputs: dict[str, bool | None] = Field(default_factory=dict)


class AppView(BaseModel):
    patient_name: str
    patient_id: str
    as_of: date
    scenario: str | None = None
    draft_drug: str | None = None
    hook_instance: str | None = None
    features: list[FeatureRow] = Field(default_factory=list)
    history: list[FeatureRow] = Field(default_factory=list)
    fitted_to: str = ""  # what the loaded model was fitted to, from its artifact
    rates: str = ""  # its training base rate beside the study's, each labelled
    risk: RiskView | None = None
    risk_unavailable: str | None = None
    survival: list[SurvivalPanel] = Field(default_factory=list)
    survival_unavailable: str | None = None
    reference_only: list[SurvivalPanel] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=list)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def patient_name(patient: dict | None) -> str:
    for name in (patient or {}).get("name", []):
        if name.get("text"):
            return name["text"]
        parts = [*name.get("given", []), name.get("family", "")]
        if any(parts):
            return " ".join(p for p in parts if p)
    return "Unnamed patient"


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict) and "value" in value:  # LabValue
        comparator = value.get("comparator") or ""
        return f"{comparator}{value['value']:g} {value.get('unit', '')}".strip()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _source(provenance: dict | None) -> tuple[str | None, str | None]:
    if not provenance:
        return None, None
    ref = provenance.get("resource_type", "")
    if provenance.get("resource_id"):
        ref += f"/{provenance['resource_id']}"
    coding = provenance.get("coding") or {}
    label = coding.get("display") or coding.get("code")
    if label:
        ref += f" ({label})"
    return ref or None, provenance.get("effective")


def feature_rows(features: Any, keys: dict[str, str]) -> list[FeatureRow]:
    data = features.model_dump(mode="json") if hasattr(features, "model_dump") else dict(features)
    rows = []
    for key, label in keys.items():
        feature = data.get(key)
        if not isinstance(feature, dict):
            continue
        source, when = _source(feature.get("provenance"))
        missing = None
        if feature.get("value") is None:
            missing = feature.get("note") or (feature.get("missing") or "not found").replace("_", " ")
        rows.append(
            FeatureRow(
                key=key,
                label=label,
                value=None if feature.get("value") is None else _format_value(feature["value"]),
                source=source,
                date=when,
                missing=missing,
            )
        )
    return rows


def history_rows(history: Any) -> list[FeatureRow]:
    keys = {
        "sorafenib_start": "Sorafenib started",
        "first_progression_after_sorafenib": "First progression after sorafenib",
        "months_to_progression": "Months from sorafenib start to progression",
        "resistance_type": "Resistance to sorafenib",
    }
    return feature_rows(history, keys)


def _curve(label: str, estimate: Any) -> Curve | None:
    curve = _get(estimate, "curve", estimate)
    times = _get(curve, "times")
    survival = _get(curve, "survival")
    if not times or not survival:
        return None
    return Curve(
        label=label,
        times=list(times),
        survival=list(survival),
        low=list(_get(curve, "low") or []) or None,
        high=list(_get(curve, "high") or []) or None,
        median_months=_get(estimate, "median_months"),
    )


REFERENCE_ENDPOINTS = {"pfs": "sl_pfs", "os": "sl_os"}


def survival_panels(comparison: Any, reference: Any, resistance: str | None) -> list[SurvivalPanel]:
    panels = []
    for endpoint, title in ENDPOINTS.items():
        per_arm = _get(comparison, endpoint) if comparison is not None else None
        curves = [c for arm, label in ARMS.items() if per_arm is not None and (c := _curve(label, _get(per_arm, arm)))]
        ref_curves = reference_curves(reference, endpoint, resistance)
        if curves or ref_curves:
            panels.append(SurvivalPanel(endpoint=endpoint, title=title, curves=curves, reference=ref_curves))
    return panels


def reference_curves(reference: Any, endpoint: str, resistance: str | None) -> list[Curve]:
    """KM curves by regimen of the data the loaded models were fitted to (the reconstructed study
    cohort for the shipped models), within the patient's resistance group when it is known."""
    curves = []
    for arm, arm_label in ARMS.items():
        wanted = {"regimen": arm, **({"resistance": resistance} if resistance else {})}
        for item in reference or []:
            if _get(item, "endpoint") == REFERENCE_ENDPOINTS[endpoint] and _get(item, "group") == wanted:
                group = f"{resistance} resistance, " if resistance else ""
                curve = _curve(f"Training cohort, {group}{arm_label} (n={_get(item, 'n')})", item)
                if curve:
                    curves.append(curve)
    return curves


def _draft_summary(context: AppContext | None, as_of: date, terminology: Any) -> Any:
    """Rebuild the card's draft-order summary from the appContext drug."""
    if context is None or context.draft is None:
        return None

    coding = {k: v for k, v in context.draft.model_dump().items() if v}
    order = {
        "resourceType": "MedicationRequest",
        "id": "draft-from-app-context",
        "status": "draft",
        "intent": "order",
        "authoredOn": as_of.isoformat(),
        "medicationCodeableConcept": {"coding": [coding], "text": coding.get("display")},
    }
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
    return classify_draft_orders(bundle, ["MedicationRequest/draft-from-app-context"], terminology)


def build_view(
    patient: dict | None,
    patient_id: str,
    resources: list[dict],
    *,
    as_of: date,
    context: AppContext | None,
    settings: Any,
    bundle: Any,
    terminology: Any,
) -> AppView:
    """``bundle`` and ``terminology``: the hook pipeline's own, so the app shows the model the
    card was computed with (``CDS_MODEL_DIR``), not the one shipped in the package."""
    view = AppView(
        patient_name=patient_name(patient),
        patient_id=patient_id,
        as_of=as_of,
        scenario=context.scenario if context else None,
        draft_drug=(context.draft.display or context.draft.code) if context and context.draft else None,
        hook_instance=context.hook_instance if context else None,
    )
    view.fitted_to, view.rates = _model_description(bundle.training)
    draft = _draft_summary(context, as_of, terminology)

    assessment = _shared_assessment(
        resources, as_of=as_of, draft=draft, terminology=terminology, settings=settings, bundle=bundle
    )
    if assessment is not None:
        return _from_assessment(view, assessment, bundle)

    features = map_patient_features(
        resources,
        as_of=as_of,
        terminology=terminology,
        lab_lookback_days=settings.lab_lookback_days,
        imaging_lookback_days=settings.imaging_lookback_days,
    )
    history = map_treatment_history(resources, terminology=terminology, as_of=as_of)
    view.features = feature_rows(features, FEATURE_LABELS)
    view.history = history_rows(history)
    view.missing = [row.label for row in view.features if row.missing and row.key in ("afp", "alt", "tumour_size_cm")]
    afp, alt = features.afp_over_400.value, features.alt_over_40.value
    if afp is None or alt is None:
        view.risk_unavailable = "AFP and ALT within the look-back window are both needed for the estimate."
    else:
        view.risk = _risk_view(bundle.resistance.predict_risk(afp_over_400=afp, alt_over_40=alt), afp, alt)

    primary = history.resistance_type.value
    reference = bundle.reference_curves()
    if primary is None:
        view.survival_unavailable = (
            "Second-line survival estimates need the resistance type (sorafenib start and first "
            "radiological progression)."
        )
        view.reference_only = survival_panels(None, reference, None)
    else:
        comparison = bundle.survival_comparison(
            primary_resistance=primary == "primary",
            tumour_size_over_5cm=features.tumour_size_over_5cm.value,
            multiple_tumours=features.multiple_tumours.value,
        )
        view.survival = survival_panels(comparison, reference, primary)
    return view


def _risk_view(risk: Any, afp: bool | None, alt: bool | None) -> RiskView:
    return RiskView(
        probability=_get(risk, "probability"),
        ci_low=_get(risk, "ci_low"),
        ci_high=_get(risk, "ci_high"),
        base_rate=_get(risk, "base_rate"),
        auc=_get(risk, "auc"),
        auc_ci=_get(risk, "auc_ci"),
        inputs={"AFP > 400 ng/mL": afp, "ALT > 40 U/L": alt},
    )


def _model_description(training: Any) -> tuple[str, str]:
    """(what the model was fitted to, its base rate beside the study's), from the artifact."""
    study = load_evidence().cohort
    if training.reconstructed:
        fitted_to = (
            "a cohort reconstructed from the study's published aggregates (no patient-level data were published)"
        )
    else:
        fitted_to = f"{training.source} (n = {training.n}, trained {training.created_date}), not the study's cohort"
    rates = (
        f"Rate in the data the model was fitted to: {training.primary_resistance}/{training.n} "
        f"({100 * training.base_rate:.1f}%); the study: {study.n_primary}/{study.n} "
        f"({100 * study.n_primary / study.n:.1f}%)."
    )
    return fitted_to, rates


def _shared_assessment(
    resources: list[dict], *, as_of: date, draft: Any, terminology: Any, settings: Any, bundle: Any
) -> Any:
    """``models.assessment.assess`` for the card's draft order, or None (no draft)."""
    if draft is None or not draft.relevant_orders:
        return None
    order = draft.relevant_orders[0]
    return assess(
        resources,
        as_of=as_of,
        ordered_drug=order.drug or "",
        ordered_class=order.drug_class.value,
        ordered_reference=order.reference,
        pd1_in_draft=draft.has_pd1_inhibitor,
        bundle=bundle,
        terminology=terminology,
        lab_lookback_days=settings.lab_lookback_days,
        imaging_lookback_days=settings.imaging_lookback_days,
    )


def _from_assessment(view: AppView, assessment: Any, bundle: Any) -> AppView:
    features = _get(assessment, "features")
    history = _get(assessment, "history")
    scenario = _get(assessment, "scenario")
    view.scenario = getattr(scenario, "value", scenario) or view.scenario
    if features is not None:
        view.features = feature_rows(features, FEATURE_LABELS)
    if history is not None:
        view.history = history_rows(history)
    view.out_of_scope = [str(m) for m in (_get(assessment, "out_of_scope") or [])]
    risk = _get(assessment, "risk")
    if risk is not None:
        view.risk = _risk_view(
            risk,
            _get(_get(features, "afp_over_400"), "value"),
            _get(_get(features, "alt_over_40"), "value"),
        )
    else:
        view.risk_unavailable = (
            "AFP and ALT within the look-back window are both needed for the estimate."
            if view.scenario == "first_line" and not view.out_of_scope
            else "The primary-resistance estimate applies when sorafenib is ordered as first-line therapy."
        )
    reference = bundle.reference_curves()
    resistance = _get(_get(history, "resistance_type"), "value")
    survival = _get(assessment, "survival")
    if survival is not None:
        view.survival = survival_panels(survival, reference, resistance)
    else:
        view.survival_unavailable = (
            "Second-line survival estimates apply when a TKI is ordered after sorafenib failure."
        )
        view.reference_only = survival_panels(None, reference, resistance)
    missing_data = _get(assessment, "missing_data") or {}
    view.missing = [f"{key}: {why}" for key, why in missing_data.items()]
    view.missing += [row.label for row in view.features if row.missing and row.key in ("afp", "alt", "tumour_size_cm")]
    view.out_of_scope = [str(m) for m in (_get(assessment, "out_of_scope") or [])]
    return view
