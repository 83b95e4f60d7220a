"""One record, one order → its assessment: map the record, choose the scenario, run the models.

This is the one orchestration of an assessment; the hook pipeline and the SMART app both call it,
with the same ``Assessor`` (built once per app), so a card and the app it links to show the same
model version, terminology and settings. ``models`` sees only typed features.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_mappers.features import PatientFeatures, TreatmentHistory
from fhir_mappers.orders import DraftOrder
from fhir_mappers.patient import PatientRecord, map_patient_features, map_treatment_history
from fhir_mappers.terminology import Terminology, load_terminology
from models.assessment import Assessment, assess, choose_scenario
from models.registry import ModelBundle, load_bundle

from .settings import Settings


@dataclass(frozen=True)
class Assessor:
    settings: Settings
    bundle: ModelBundle
    terminology: Terminology

    @classmethod
    def load(cls, settings: Settings) -> Assessor:
        """The models of ``CDS_MODEL_DIR`` (else the shipped ones) and ``CDS_TERMINOLOGY_PATH``."""
        return cls(settings, load_bundle(settings.model_dir), load_terminology(settings.terminology_path))

    def history(self, resources: Iterable[dict[str, Any]], as_of: date) -> TreatmentHistory:
        return map_treatment_history(resources, terminology=self.terminology, as_of=as_of)

    def features(self, resources: Iterable[dict[str, Any]], as_of: date) -> PatientFeatures:
        return map_patient_features(
            resources,
            as_of=as_of,
            terminology=self.terminology,
            lab_lookback_days=self.settings.lab_lookback_days,
            imaging_lookback_days=self.settings.imaging_lookback_days,
        )

    def assess(
        self,
        resources: Iterable[dict[str, Any]],
        *,
        as_of: date,
        order: DraftOrder,
        pd1_in_draft: bool,
        missing_data: dict[str, str] | None = None,
    ) -> Assessment | None:
        """The assessment for this order, or None when the study has nothing to say about it. The
        features are mapped only once the history has made the order one the study covers."""
        resources = PatientRecord(resources, self.terminology)  # flattened, classified and dated once for both
        history = self.history(resources, as_of)
        scenario = choose_scenario(order.drug_class.value, history, refill_cards=self.settings.refill_cards)
        if scenario is None:
            return None
        return assess(
            scenario,
            self.features(resources, as_of),
            history,
            as_of=as_of,
            ordered_drug=order.drug or order.drug_class.value,
            ordered_reference=order.reference,
            pd1_in_draft=pd1_in_draft,
            bundle=self.bundle,
            missing_data=missing_data,
            borderline_days=self.settings.resistance_borderline_days,
        )
