"""Pydantic models of what EHRs send us (CDS Hooks 2.0 request and feedback bodies).

Tolerant by design (``extra="ignore"``): the spec lets clients add fields. Strict on what the
spec requires, so a malformed call gets a 400 naming the field instead of a wrong card.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FhirAuthorization(Tolerant):
    access_token: str = Field(min_length=1, repr=False)
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0)
    scope: str
    subject: str
    patient: str | None = None


class OrderContext(Tolerant):
    """Context of ``order-select`` and ``order-sign`` (both carry a draftOrders Bundle)."""

    userId: str = Field(min_length=1)
    # A FHIR id (R4 datatypes, `id`): it goes into every search the service sends, where `&`, `#`
    # or `/` would change what is searched (`p1&patient=p2`).
    patientId: str = Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    encounterId: str | None = None
    selections: list[str] | None = None
    draftOrders: dict[str, Any]

    @field_validator("draftOrders")
    @classmethod
    def _is_bundle(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("resourceType") != "Bundle":
            raise ValueError("draftOrders must be a FHIR Bundle (resourceType 'Bundle')")
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            raise ValueError("draftOrders.entry must be an array")
        return value


class HookRequest(Tolerant):
    hook: str = Field(min_length=1)
    hookInstance: UUID
    # fhirAuthorization is declared first so that fhirServer's validator can see it.
    fhirAuthorization: FhirAuthorization | None = None
    fhirServer: AnyHttpUrl | None = Field(None, validate_default=True)
    context: OrderContext
    prefetch: dict[str, Any] | None = None

    @field_validator("prefetch")
    @classmethod
    def _prefetch_values_are_resources(cls, value: dict[str, Any] | None):
        for key, item in (value or {}).items():
            if item is not None and not (isinstance(item, dict) and "resourceType" in item):
                raise ValueError(f"prefetch['{key}'] must be a FHIR resource or null")
        return value

    @field_validator("fhirServer")
    @classmethod
    def _server_with_token(cls, value: AnyHttpUrl | None, info: ValidationInfo) -> AnyHttpUrl | None:
        if value is None and info.data.get("fhirAuthorization") is not None:
            raise ValueError("fhirServer is required when fhirAuthorization is given")
        return value

    @property
    def fhir_base(self) -> str | None:
        return str(self.fhirServer).rstrip("/") if self.fhirServer else None


class FeedbackElement(Tolerant):
    """An object of a feedback body (CDS Hooks 2.0 §Feedback). Fields we do not know are ignored,
    as the spec lets clients add them; what it says of every element is checked: "JSON elements
    SHALL NOT be null" (§Use of JSON; an optional one is left out), and "the specification
    reserves the name `extension`", whose value "MUST be a pre-coordinated JSON object"
    (§Extensions; not empty, as no element may be)."""

    extension: dict[str, Any] | None = Field(None, min_length=1)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Called for values that were sent only: an element left out takes its default.
        if value is None:
            raise ValueError(f"{info.field_name} must not be null: leave it out instead")
        return value


class Coding(FeedbackElement):
    """CDS Hooks 2.0 §Coding: `code` and `system` REQUIRED; `display` required only of the
    override reasons a service offers, so a reason the EHR added may come without one."""

    system: str = Field(min_length=1, max_length=500)
    code: str = Field(min_length=1, max_length=200)
    display: str | None = Field(None, min_length=1, max_length=500)


class OverrideReason(FeedbackElement):
    """`reason` is CONDITIONAL ("Required if user selected an override reason ... instead of only
    leaving a userComment"), `userComment` OPTIONAL, and no element may be empty: so one of the
    two, or both. An empty object says nothing and is refused."""

    reason: Coding | None = None
    userComment: str | None = Field(None, min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _says_something(self) -> OverrideReason:
        if self.reason is None and self.userComment is None:
            raise ValueError(
                "overrideReason must carry a reason, a userComment or both; an empty object is not allowed"
            )
        return self


class AcceptedSuggestion(FeedbackElement):
    id: str = Field(min_length=1, max_length=200)


# RFC 3339 §5.6 date-time, as the spec profiles outcomeTimestamp: seconds and an offset required
# (its note allows a space for the T). Checked before parsing, which would take "1639217131" as
# Unix time, or "10:05Z" and "+0100" as ISO 8601 does. The spec asks for the time "in UTC"; an
# offset other than Z names the same instant unambiguously, so it is accepted and stored in UTC.
_RFC3339_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class FeedbackEntry(FeedbackElement):
    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(None, min_length=1, max_length=100)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: datetime

    @field_validator("outcomeTimestamp", mode="before")
    @classmethod
    def _is_text(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _RFC3339_DATE_TIME.fullmatch(value):
            raise ValueError("outcomeTimestamp must be an RFC 3339 date-time string, e.g. 2021-12-11T10:05:31Z")
        return value

    @field_validator("outcomeTimestamp")
    @classmethod
    def _has_timezone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("outcomeTimestamp must carry a timezone offset (FHIR instant)")
        try:
            value.astimezone(UTC)  # stored in UTC: 0001-01-01T00:00+01:00 has no UTC date
        except OverflowError:
            raise ValueError("outcomeTimestamp is out of range once converted to UTC") from None
        return value

    # acceptedSuggestions is "Required for `accepted` outcomes". The spec's table leaves the two
    # cross cases open; its text has the user either accept suggestions or dismiss the card "with
    # or without an override reason", so an entry carrying the other outcome's field contradicts
    # itself, and which of the two the clinician did cannot be told: refused, naming the field.
    @field_validator("acceptedSuggestions")
    @classmethod
    def _only_when_accepted(cls, value: list[AcceptedSuggestion], info: ValidationInfo) -> list[AcceptedSuggestion]:
        if info.data.get("outcome") == "overridden":
            raise ValueError("acceptedSuggestions must be absent when outcome is 'overridden'")
        return value

    @field_validator("overrideReason")
    @classmethod
    def _only_when_overridden(cls, value: OverrideReason, info: ValidationInfo) -> OverrideReason:
        if info.data.get("outcome") == "accepted":
            raise ValueError("overrideReason must be absent when outcome is 'accepted'")
        return value

    @model_validator(mode="after")
    def _accepted_names_its_suggestions(self) -> FeedbackEntry:
        if self.outcome == "accepted" and self.acceptedSuggestions is None:
            raise ValueError("acceptedSuggestions is required when outcome is 'accepted'")
        return self


class FeedbackRequest(FeedbackElement):
    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=100)
