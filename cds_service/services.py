"""The CDS Services this server offers, as announced by discovery (CDS Hooks 2.0 §Discovery)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from fhir_mappers.terminology import SECTIONS, Terminology

from .prefetch import PrefetchTemplate

LAB_KEYS = SECTIONS["labs"]

PATIENT = "{{context.patientId}}"

# The user's Practitioner, for the language of the cards (Practitioner.communication; CDS Hooks 2.0
# prefetch token `userPractitionerId`). Resolved only when `context.userId` names a Practitioner.
USER_TEMPLATE = PrefetchTemplate(
    "user", "Practitioner/{{userPractitionerId}}", False, "the clinician's language (Practitioner.communication)"
)


# Observation codes the tumour template asks for: sections and keys of the terminology file.
_TUMOUR_KEYS = {
    "imaging": ("tumour_size", "tumour_count"),
    "findings": ("vascular_invasion", "extrahepatic_metastasis"),
    "staging": ("child_pugh", "bclc"),
    "progression": ("status_codes",),
}


_SEARCH_SPECIALS = re.compile(r"([\\,|$])")


def search_token(system: str, code: str) -> str:
    """One `system|code` token search value as it goes into a URL (FHIR R4 search.html#escaping):
    `\\` `,` `|` `$` inside system or code escaped with `\\`, then everything but unreserved
    characters percent-encoded, the `|` separator too. So no `//` is left for a proxy that
    collapses them (smart-launcher-v2 does) to turn `http://loinc.org` into `http:/loinc.org`;
    OR alternatives are joined by the caller with literal commas, as the spec requires."""

    def encoded(part: str) -> str:
        return quote(_SEARCH_SPECIALS.sub(r"\\\1", part), safe="")

    return f"{encoded(system)}%7C{encoded(code)}"


def _token_list(terminology: Terminology, keys: dict[str, tuple[str, ...]]) -> str:
    """`system|code` tokens, percent-encoded, deduplicated, in file order: local codes a hospital
    adds to its terminology file are prefetched too, with no code change."""
    tokens = [
        search_token(coding.system, coding.code)
        for section, names in keys.items()
        for name in names
        for coding in terminology.codes(section, name)
        if coding.system and coding.code
    ]
    return ",".join(dict.fromkeys(tokens))


LABS_BY_CATEGORY = f"Observation?patient={PATIENT}&category=laboratory&_sort=-date&_count=200"


def prefetch_templates(
    terminology: Terminology, labs: Literal["codes", "category"] = "codes"
) -> list[PrefetchTemplate]:
    """Templates keep to the query subset CDS Hooks 2.0 recommends (reads, token equality, _sort,
    _count) except for `_include=<Type>:medication` on the three medication searches, which the
    subset does not list: it brings the Medications that orders name by `medicationReference`.
    An EHR that ignores `_include` still works: the service reads the Medications it lacks from
    fhirServer (cds_service.prefetch.read_medications)."""
    lab_codes = _token_list(terminology, {"labs": tuple(sorted(LAB_KEYS))})
    tumour_codes = _token_list(terminology, _TUMOUR_KEYS)
    return [
        PrefetchTemplate("patient", f"Patient/{PATIENT}", True, "age, sex"),
        PrefetchTemplate(
            "labs",
            f"Observation?patient={PATIENT}&code={lab_codes}&_sort=-date&_count=200"
            if labs == "codes"
            else LABS_BY_CATEGORY,
            True,
            "AFP, ALT, AST, bilirubin, albumin, platelets, INR",
        ),
        PrefetchTemplate(
            "tumour",
            f"Observation?patient={PATIENT}&code={tumour_codes}&_sort=-date&_count=200",
            True,
            "tumour size and count, invasion, metastasis, disease status (progression)",
        ),
        PrefetchTemplate(
            "reports",
            f"DiagnosticReport?patient={PATIENT}&_sort=-date&_count=50",
            False,
            "imaging reports coded as progression",
        ),
        PrefetchTemplate(
            "conditions",
            f"Condition?patient={PATIENT}",
            True,
            "HCC, HBV/HCV, cirrhosis, Child-Pugh, BCLC; varices, bleeding, transplant, autoimmune disease, ascites",
        ),
        PrefetchTemplate(
            "procedures", f"Procedure?patient={PATIENT}", False, "prior HCC surgery, upper endoscopy, transplant"
        ),
        PrefetchTemplate(
            "medicationRequests",
            f"MedicationRequest?patient={PATIENT}&_include=MedicationRequest:medication",
            True,
            "sorafenib, TKI and PD-1 history (with the Medications it references)",
        ),
        PrefetchTemplate(
            "medicationStatements",
            f"MedicationStatement?patient={PATIENT}&_include=MedicationStatement:medication",
            False,
            "treatment history",
        ),
        PrefetchTemplate(
            "medicationAdministrations",
            f"MedicationAdministration?patient={PATIENT}&_include=MedicationAdministration:medication",
            False,
            "treatment history",
        ),
        # R4 AdverseEvent has no `patient` search parameter; `subject` is typed because it may also
        # name a Group, Practitioner or RelatedPerson.
        PrefetchTemplate(
            "adverseEvents",
            f"AdverseEvent?subject=Patient/{PATIENT}",
            False,
            "adverse events that stopped sorafenib (a toxicity switch is not resistance)",
        ),
        USER_TEMPLATE,
    ]


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    templates: tuple[PrefetchTemplate, ...]

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": {t.key: t.query for t in self.templates},
            "usageRequirements": (
                "Needs the prefetch above or a fhirServer with fhirAuthorization able to read "
                "Patient, Observation, DiagnosticReport, Condition, Procedure, AdverseEvent and Medication* "
                "resources for the patient. Evidence: Lei et al. 2025, DOI 10.1177/17588359241299678."
            ),
        }


_DESCRIPTION = (
    "Systemic therapy for hepatocellular carcinoma. Sorafenib first line: estimated risk of "
    "primary sorafenib resistance (progression within 3 months) from AFP and ALT, with "
    "alternatives when it is high. TKI after sorafenib failure: primary vs secondary resistance "
    "and individualised PFS/OS estimates for TKI alone vs TKI + PD-1 inhibitor. "
    "Evidence: Lei et al. 2025 (retrospective, modest discrimination)."
)


def build_services(templates: list[PrefetchTemplate]) -> dict[str, CdsService]:
    services = [
        CdsService(
            "hcc-systemic-therapy-select",
            "order-select",
            "HCC systemic therapy: sorafenib resistance and second-line survival (order-select)",
            _DESCRIPTION,
            tuple(templates),
        ),
        CdsService(
            "hcc-systemic-therapy-sign",
            "order-sign",
            "HCC systemic therapy: sorafenib resistance and second-line survival (order-sign)",
            _DESCRIPTION,
            tuple(templates),
        ),
    ]
    return {service.id: service for service in services}
