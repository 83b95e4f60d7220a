"""Adapter between the shared assessment and what the app page shows.

The app must show the assessment the card showed, so it asks the app's one ``Assessor`` (the hook
pipeline's: same model bundle, terminology and settings). Without a draft order in the launch
context it maps the record with that assessor and asks the same bundle directly. The page only
reads ``AppView``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from cards import app_text, i18n
from cards.common import missing_reason
from cards.i18n import _
from cards.names import drug_name
from cards.notes import say
from fhir_mappers.orders import classify_draft_orders
from hcc_evidence import load_evidence

from ..app_context import AppContext
from ..assessor import Assessor

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# Labels are message ids (cards.app_text): translated where a row, panel or curve is built.
FEATURE_LABELS = app_text.FEATURE_LABELS
ENDPOINTS = app_text.ENDPOINTS
ARMS = app_text.ARMS


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
    return app_text.unnamed_patient()


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return app_text.yes_no(value)
    if isinstance(value, dict) and "value" in value:  # LabValue
        comparator = value.get("comparator") or ""
        return f"{comparator}{value['value']:g} {value.get('unit', '')}".strip()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _read_as(value: Any, provenance: dict | None) -> str:
    """The value, and how it was read when the clinician should check the reading (as the cards
    say it): from a text result rather than a quantity, by the test's name rather than a code."""
    shown = _format_value(value)
    prov = provenance or {}
    if isinstance(value, dict) and value.get("from_text"):
        original = prov.get("original_value")
        written = f"{original:g}" if isinstance(original, float) else original
        text = f"{prov.get('comparator') or ''}{written} {prov.get('original_unit') or ''}".strip()
        shown = _("%(value)s, read from the text result '%(text)s'", value=shown, text=text)
    if prov.get("matched_by_name"):
        shown = _("%(value)s (matched by the test's name, not by a code)", value=shown)
    return shown


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
            note = getattr(getattr(features, key, None), "note", None) or feature.get("note")  # the Note, if any
            missing = say(note) if note else missing_reason(feature.get("missing") or "not_found")
        rows.append(
            FeatureRow(
                key=key,
                label=_(label),
                value=None if feature.get("value") is None else _read_as(feature["value"], feature.get("provenance")),
                source=source,
                date=when,
                missing=missing,
            )
        )
    return rows


def history_rows(history: Any) -> list[FeatureRow]:
    rows = feature_rows(history, app_text.HISTORY_LABELS)
    for row in rows:
        if row.key == "resistance_type" and row.value in app_text.RESISTANCE:
            row.value = _(app_text.RESISTANCE[row.value])
    return rows


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
        curves = [
            c for arm, label in ARMS.items() if per_arm is not None and (c := _curve(_(label), _get(per_arm, arm)))
        ]
        ref_curves = reference_curves(reference, endpoint, resistance)
        if curves or ref_curves:
            panels.append(SurvivalPanel(endpoint=endpoint, title=_(title), curves=curves, reference=ref_curves))
    return panels


def reference_curves(reference: Any, endpoint: str, resistance: str | None) -> list[Curve]:
    """KM curves by regimen of the data the loaded models were fitted to (the reconstructed study
    cohort for the shipped models), within the patient's resistance group when it is known."""
    curves = []
    for arm in ARMS:
        wanted = {"regimen": arm, **({"resistance": resistance} if resistance else {})}
        for item in reference or []:
            if _get(item, "endpoint") == REFERENCE_ENDPOINTS[endpoint] and _get(item, "group") == wanted:
                curve = _curve(app_text.reference_curve_label(arm, resistance, _get(item, "n")), item)
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
    assessor: Assessor,
) -> AppView:
    """``assessor``: the hook pipeline's own, so the app shows the model the card was computed
    with (``CDS_MODEL_DIR``), not the one shipped in the package."""
    bundle = assessor.bundle
    view = AppView(
        patient_name=patient_name(patient),
        patient_id=patient_id,
        as_of=as_of,
        scenario=context.scenario if context else None,
        draft_drug=drug_name(context.draft.display or context.draft.code or "") if context and context.draft else None,
        hook_instance=context.hook_instance if context else None,
    )
    view.fitted_to, view.rates = _model_description(bundle.training)
    draft = _draft_summary(context, as_of, assessor.terminology)
    if draft is not None and draft.relevant_orders:
        assessment = assessor.assess(
            resources, as_of=as_of, order=draft.relevant_orders[0], pd1_in_draft=draft.has_pd1_inhibitor
        )
        if assessment is not None:
            return _from_assessment(view, assessment, bundle)

    features = assessor.features(resources, as_of)
    history = assessor.history(resources, as_of)
    view.features = feature_rows(features, FEATURE_LABELS)
    view.history = history_rows(history)
    view.missing = [row.label for row in view.features if row.missing and row.key in ("afp", "alt", "tumour_size_cm")]
    afp, alt = features.afp_over_400.value, features.alt_over_40.value
    if afp is None or alt is None:
        view.risk_unavailable = app_text.risk_needs_markers()
    else:
        view.risk = _risk_view(bundle.resistance.predict_risk(afp_over_400=afp, alt_over_40=alt), afp, alt)

    primary = history.resistance_type.value
    reference = bundle.reference_curves()
    if primary is None:
        view.survival_unavailable = app_text.survival_needs_resistance_type()
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
        inputs={_(app_text.MARKER_INPUTS[0]): afp, _(app_text.MARKER_INPUTS[1]): alt},
    )


def _model_description(training: Any) -> tuple[str, str]:
    """(what the model was fitted to, its base rate beside the study's), from the artifact."""
    study = load_evidence().cohort
    if training.reconstructed:
        fitted_to = app_text.fitted_to_reconstruction()
    else:
        fitted_to = app_text.fitted_to_data(training.source, training.n, str(training.created_date))
    rates = app_text.rates(
        training.primary_resistance,
        training.n,
        i18n.pct(training.base_rate, 1),
        study.n_primary,
        study.n,
        i18n.pct(study.n_primary / study.n, 1),
    )
    return fitted_to, rates


def _from_assessment(view: AppView, assessment: Any, bundle: Any) -> AppView:
    features = _get(assessment, "features")
    history = _get(assessment, "history")
    scenario = _get(assessment, "scenario")
    view.scenario = getattr(scenario, "value", scenario) or view.scenario
    if features is not None:
        view.features = feature_rows(features, FEATURE_LABELS)
    if history is not None:
        view.history = history_rows(history)
    view.out_of_scope = [say(m) for m in (_get(assessment, "out_of_scope") or [])]
    risk = _get(assessment, "risk")
    if risk is not None:
        view.risk = _risk_view(
            risk,
            _get(_get(features, "afp_over_400"), "value"),
            _get(_get(features, "alt_over_40"), "value"),
        )
    else:
        view.risk_unavailable = (
            app_text.risk_needs_markers()
            if view.scenario == "first_line" and not view.out_of_scope
            else app_text.risk_first_line_only()
        )
    reference = bundle.reference_curves()
    resistance = _get(_get(history, "resistance_type"), "value")
    survival = _get(assessment, "survival")
    if survival is not None:
        view.survival = survival_panels(survival, reference, resistance)
    else:
        view.survival_unavailable = app_text.survival_after_failure_only()
        view.reference_only = survival_panels(None, reference, resistance)
    missing_data = _get(assessment, "missing_data") or {}
    view.missing = [f"{key}: {why}" for key, why in missing_data.items()]
    view.missing += [row.label for row in view.features if row.missing and row.key in ("afp", "alt", "tumour_size_cm")]
    return view
