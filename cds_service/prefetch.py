"""Prefetch templates (CDS Hooks 2.0 §Prefetch Template) and their resolution.

What the EHR prefetched is used as sent; a key the EHR left out is fetched from ``fhirServer``
within the fetch budget; a key sent as ``null`` means "no data" and is not fetched again.
Medications that orders reference and that neither the draft orders nor the prefetch hold are
read from ``fhirServer`` (``read_medications``), within what is left of the same budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir_mappers._common import reference_key
from fhir_mappers.notes import Note

from .errors import ApiError
from .fhir_client import FhirClient
from .schemas import HookRequest
from .ssrf import FhirServerRefused, refused

_TOKEN = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}")
_USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}


@dataclass(frozen=True)
class PrefetchTemplate:
    key: str
    query: str
    required: bool
    purpose: str


@dataclass
class ResolvedPrefetch:
    """The data the assessment will read, and an account of what could not be had."""

    values: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    fetch_failed: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # key -> why
    # Medications read from fhirServer by id ('Medication/id' -> resource): not EHR prefetch data,
    # hence kept apart from `values` and its template keys.
    medications: dict[str, dict[str, Any]] = field(default_factory=dict)
    medication_reads_failed: int = 0

    @property
    def resources(self) -> list[dict[str, Any]]:
        return [value for value in self.values.values() if value is not None]


def render(template: str, context: dict[str, Any]) -> str:
    """Replace prefetch tokens with root-level primitive context fields.

    An unknown token raises ``KeyError``: a template we cannot fill must not be sent half-filled.
    """
    tokens = {
        f"context.{name}": value
        for name, value in context.items()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool)
    }
    user = context.get("userId")
    if isinstance(user, str) and "/" in user:
        resource_type, _, user_id = user.partition("/")
        if resource_type in _USER_TOKENS:
            tokens[_USER_TOKENS[resource_type]] = user_id

    def substitute(match: re.Match[str]) -> str:
        return str(tokens[match.group(1)])

    return _TOKEN.sub(substitute, template)


def resolve(
    request: HookRequest,
    templates: list[PrefetchTemplate],
    client: FhirClient,
    budget_seconds: float,
) -> ResolvedPrefetch:
    sent = request.prefetch or {}
    result = ResolvedPrefetch()
    to_fetch: dict[str, str] = {}
    context = request.context.model_dump(exclude_none=True)
    for template in templates:
        if template.key in sent:
            result.values[template.key] = _strip_outcomes(sent[template.key], result, template.key)
        else:
            to_fetch[template.key] = render(template.query, context)

    if not to_fetch:
        return result
    base = request.fhir_base
    if base is None:
        required = [t.key for t in templates if t.required and t.key in to_fetch]
        if required:
            # CDS Hooks 2.0: no prefetch and no FHIR server to ask → 412 Precondition Failed.
            raise ApiError(
                412,
                "prefetch_unavailable",
                "Required prefetch keys are missing and the request names no fhirServer to fetch them from.",
                [{"field": f"prefetch.{key}", "problem": "missing"} for key in required],
            )
        why = Note("prefetch.no_server", "not prefetched and no fhirServer")
        result.missing.update(dict.fromkeys(to_fetch, why))
        return result

    try:
        client.policy.check_resolved(base)  # before the token goes anywhere
    except FhirServerRefused as exc:
        raise refused(exc.reason) from None
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    for key, outcome in client.fetch_all(base, to_fetch, token, budget_seconds).items():
        if outcome.error is not None:
            result.missing[key] = outcome.error
            result.values[key] = None
            result.fetch_failed.append(key)
        else:
            result.values[key] = outcome.resource
            result.fetched.append(key)
    return result


def _strip_outcomes(value: Any, result: ResolvedPrefetch, key: str) -> dict[str, Any] | None:
    """The spec lets an EHR report a prefetch failure as an OperationOutcome: treat it as missing."""
    if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
        result.missing[key] = Note("prefetch.outcome", "the EHR reported an error for this prefetch (OperationOutcome)")
        return None
    return value


# One hook call reads at most this many Medications (the draft orders' first, then those the
# history references), distinct and deduplicated: a record referencing hundreds of Medications
# must not turn one call into hundreds of reads. The rest are reported missing.
MAX_MEDICATION_READS = 20
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def read_medications(
    request: HookRequest,
    references: list[str],
    client: FhirClient,
    budget_seconds: float,
    result: ResolvedPrefetch,
) -> None:
    """GET ``Medication/{id}`` from ``fhirServer`` for each reference (as written: relative, or
    absolute on fhirServer itself), in parallel through ``client.fetch_all`` (its SSRF policy
    checks every URL before the token is sent), within ``budget_seconds``. What is read goes to
    ``result.medications``; what is not, to ``result.missing`` with the reason."""
    base = request.fhir_base
    queries: dict[str, str] = {}
    considered: set[str] = set()
    skipped = 0
    for ref in references:
        key = reference_key(ref) or ref
        if key in considered or key in result.medications:
            continue
        if len(considered) >= MAX_MEDICATION_READS:
            skipped += 1
            continue
        considered.add(key)
        problem = _unreadable(ref, key, base)
        if problem is not None:
            result.missing[key] = problem
        else:
            queries[key] = key
    if skipped:
        result.missing["Medication"] = Note(
            "prefetch.too_many_medications",
            "%(skipped)s more referenced Medication(s) not read: a call reads at most %(most)s",
            skipped=skipped,
            most=MAX_MEDICATION_READS,
        )
    if not queries:
        return
    if budget_seconds <= 0:
        for key in queries:
            result.missing[key] = Note("prefetch.budget", "not read from the FHIR server: the fetch budget ran out")
        result.medication_reads_failed += len(queries)
        return
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    for key, outcome in client.fetch_all(base, queries, token, budget_seconds).items():  # type: ignore[arg-type]
        error = outcome.error
        if error is None and (outcome.resource or {}).get("resourceType") != "Medication":
            error = Note(
                "prefetch.not_a_medication", "the FHIR server answered with something that is not a Medication"
            )
        if error is not None:
            result.missing[key] = Note(
                "prefetch.read_failed", "could not be read from the FHIR server: %(error)s", error=error
            )
            result.medication_reads_failed += 1
        else:
            result.medications[key] = outcome.resource  # type: ignore[assignment]


def _unreadable(ref: str, key: str, base: str | None) -> str | None:
    """Why a Medication reference is not read from fhirServer, or None when it may be."""
    if base is None:
        return Note(
            "prefetch.no_server_to_read", "not in the draft orders or the prefetch, and no fhirServer to read it from"
        )
    resource_type, _, rid = key.partition("/")
    if resource_type != "Medication" or not _FHIR_ID.fullmatch(rid):
        return Note("prefetch.not_readable", "not a Medication reference that can be read")
    if "://" in ref and not ref.startswith(base.rstrip("/") + "/"):
        return Note("prefetch.other_server", "the reference points to another server than fhirServer: not read")
    return None
