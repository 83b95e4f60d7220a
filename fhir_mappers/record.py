"""One mapping call's patient record, indexed once: every feature extractor reads from it.

The resources are flattened and de-duplicated once, grouped by resource type, their coded
elements classified by the terminology once, and an Observation's date (its own, else its
DiagnosticReport's) parsed once. With 10,000 lab results in a prefetch, the extractors then
visit only what maps to their feature, instead of each walking and matching the whole record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fhir_mappers._common import as_list, collect, reference_key
from fhir_mappers.errors import MappingError
from fhir_mappers.fhirdates import FhirDate, effective_date
from fhir_mappers.terminology import CodeIndex, Terminology

Dated = tuple[FhirDate | None, str | None]  # a date and the element it came from
_UNDATED: Dated = (None, None)


class PatientRecord:
    """The resources of one call, flattened, by type, by reference, coded and dated.

    Build it once with `PatientRecord(resources, terminology)` and pass it to both
    `map_patient_features` and `map_treatment_history` in place of the resources: neither then
    flattens nor classifies again. It iterates as its resources, so it goes wherever they go."""

    def __init__(self, resources: Iterable[dict[str, Any]] | Any, terminology: Terminology) -> None:
        self.terminology = terminology
        self.resources, self.by_ref, self.outcomes = collect(resources)
        self.by_type: dict[str, list[dict[str, Any]]] = {}
        self._position: dict[int, int] = {}  # id(resource) -> place in the input
        for position, resource in enumerate(self.resources):
            self.by_type.setdefault(resource["resourceType"], []).append(resource)
            self._position[id(resource)] = position
        self.observations = CodeIndex(
            terminology, self.of_type("Observation"), ("code", "valueCodeableConcept"), by_name=("code",)
        )
        self.conditions = CodeIndex(terminology, self.of_type("Condition"))
        self.procedures = CodeIndex(terminology, self.of_type("Procedure"))
        self._report_dates = _report_dates(self.of_type("DiagnosticReport"))
        self._observation_dates: dict[int, Dated] = {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The flat, de-duplicated resources: a record goes wherever resources go."""
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def of_type(self, *resource_types: str) -> list[dict[str, Any]]:
        """The resources of these types, in input order."""
        if len(resource_types) == 1:
            return self.by_type.get(resource_types[0], [])
        return self.in_input_order([r for kind in resource_types for r in self.by_type.get(kind, ())])

    def in_input_order(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Resources of this record in the order they came: where records tie (two drugs started
        the same day), the first sent is the one reported, as before the index."""
        return sorted(resources, key=lambda r: self._position[id(r)])

    def observation_date(self, obs: dict[str, Any]) -> Dated:
        """The Observation's own date, else that of the DiagnosticReport listing it; parsed once
        a call, however many features read it (keyed by identity: the record holds the resource)."""
        key = id(obs)
        found = self._observation_dates.get(key)
        if found is None:
            found = effective_date(obs) or _UNDATED
            if found[0] is None:
                linked = self._report_dates.get(f"Observation/{obs.get('id')}")
                if linked is not None:
                    found = linked
            self._observation_dates[key] = found
        return found

    @property
    def operation_outcomes(self) -> list[str]:
        return self.outcomes.messages()


def patient_record(resources: Iterable[dict[str, Any]] | Any, terminology: Terminology) -> PatientRecord:
    """`resources` as a PatientRecord: itself when it already is one (built with this terminology)."""
    if isinstance(resources, PatientRecord):
        if resources.terminology is not terminology:
            raise MappingError("the patient record was indexed with another terminology")
        return resources
    return PatientRecord(resources, terminology)


def _report_dates(reports: list[dict[str, Any]]) -> dict[str, tuple[FhirDate, str]]:
    """Observation 'Type/id' -> (date, source) from the first DiagnosticReport that lists it in
    `result`, for Observations that carry no date of their own."""
    out: dict[str, tuple[FhirDate, str]] = {}
    for report in reports:
        when = effective_date(report)
        if when is None:
            continue
        for ref in as_list(report.get("result")):
            key = reference_key(ref)
            if key:
                out.setdefault(key, (when[0], f"DiagnosticReport/{report.get('id')}.{when[1]}"))
    return out
