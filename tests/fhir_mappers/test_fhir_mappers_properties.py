"""Property tests: arbitrary resource-like JSON never breaks the mappers."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mappers.features import PatientFeatures, TreatmentHistory
from fhir_mappers.orders import classify_draft_orders
from fhir_mappers.patient import map_patient_features, map_treatment_history
from fhir_mappers.terminology import load_terminology

TERMINOLOGY = load_terminology()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2025-03-01",
            "2025",
            "2025-13-45",
            "2025-02-30T10:00:00Z",
            "final",
            "<",
            ">",
            "~",
            "U/L",
            "[IU]/mL",
            "NaN",
            "1e309",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
codings = st.fixed_dictionaries(
    {
        "system": st.sampled_from(
            [
                "http://loinc.org",
                "http://snomed.info/sct",
                "http://www.nlm.nih.gov/research/umls/rxnorm",
                "http://www.whocc.no/atc",
                5,
            ]
        ),
        "code": st.one_of(
            st.sampled_from(
                [
                    "1834-1",
                    "1742-6",
                    "1920-8",
                    "21889-1",
                    "33728-7",
                    "97509-4",
                    "271299001",
                    "25370001",
                    "597747",
                    "L01EX08",
                    "1547545",
                ]
            ),
            json_values,
        ),
    }
)
concepts = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"coding": st.one_of(st.lists(codings, max_size=2), json_values)}, optional={"text": json_values}
    ),
)
quantities = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "value": json_values,
            "unit": json_values,
            "code": json_values,
            "system": json_values,
            "comparator": json_values,
        },
    ),
)
TYPES = [
    "Observation",
    "Condition",
    "Procedure",
    "DiagnosticReport",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "Bundle",
    "OperationOutcome",
    "Medication",
]
resources = st.fixed_dictionaries(
    {"resourceType": st.one_of(st.sampled_from(TYPES), json_values)},
    optional={
        "id": json_values,
        "status": st.one_of(
            st.sampled_from(["final", "preliminary", "entered-in-error", "completed", "active"]), json_values
        ),
        "code": concepts,
        "valueQuantity": quantities,
        "valueCodeableConcept": concepts,
        "valueInteger": json_values,
        "valueBoolean": json_values,
        "valueString": json_values,
        "component": st.lists(st.fixed_dictionaries({"code": concepts, "valueQuantity": quantities}), max_size=2),
        "effectiveDateTime": json_values,
        "effectivePeriod": json_values,
        "issued": json_values,
        "authoredOn": json_values,
        "medicationCodeableConcept": concepts,
        "medicationReference": json_values,
        "contained": json_values,
        "clinicalStatus": json_values,
        "verificationStatus": json_values,
        "stage": json_values,
        "result": json_values,
        "conclusionCode": json_values,
        "dosageInstruction": json_values,
        "entry": json_values,
        "dataAbsentReason": json_values,
        "onsetDateTime": json_values,
        "recordedDate": json_values,
        "performedDateTime": json_values,
    },
)
inputs = st.lists(st.one_of(resources, json_values), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_patient_features_never_raise(values):
    features = map_patient_features(values, as_of=date(2025, 3, 10), terminology=TERMINOLOGY)
    assert isinstance(features, PatientFeatures)
    features.model_dump(mode="json")
    for name, feature in features.features().items():
        assert (feature.value is None) == (feature.missing is not None), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs, st.one_of(st.none(), st.dates()))
def test_treatment_history_never_raises(values, as_of):
    history = map_treatment_history(values, terminology=TERMINOLOGY, as_of=as_of)
    assert isinstance(history, TreatmentHistory)
    history.model_dump(mode="json")


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "resourceType": st.just("Bundle"),
                "entry": st.lists(st.one_of(st.fixed_dictionaries({"resource": resources}), json_values), max_size=4),
            }
        ),
    ),
    st.one_of(st.none(), st.lists(st.one_of(st.text(max_size=30), json_values), max_size=3)),
)
def test_draft_orders_never_raise(draft, selections):
    classify_draft_orders(draft, selections, TERMINOLOGY).model_dump(mode="json")
