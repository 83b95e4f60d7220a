"""Pydantic models of what EHRs send us (CDS Hooks 2.0 request and feedback bodies).

Tolerant by design (``extra="ignore"``): the spec lets clients add fields. Strict on what the
spec requires, so a malformed call gets a 400 naming the field instead of a wrong card.
"""

from __future__ import annotations

from datetime import datetime, timezone
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


class Coding(Tolerant):
    system: str | None = None
    code: str = Field(min_length=1)
    display: str | None = None


class OverrideReason(Tolerant):
    reason: Coding | None = None
    userComment: str | None = Field(None, max_length=4000)


class AcceptedSuggestion(Tolerant):
    id: str = Field(min_length=1)


class FeedbackEntry(Tolerant):
    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: datetime

    @field_validator("outcomeTimestamp", mode="before")
    @classmethod
    def _is_text(cls, value: Any) -> Any:
        # The spec asks for an RFC 3339 string; a bare number would otherwise pass as Unix time.
        if not isinstance(value, str):
            raise ValueError("outcomeTimestamp must be an RFC 3339 date-time string, e.g. 2021-12-11T10:05:31Z")
        return value

    @field_validator("outcomeTimestamp")
    @classmethod
    def _has_timezone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("outcomeTimestamp must carry a timezone offset (FHIR instant)")
        try:
            value.astimezone(timezone.utc)  # stored in UTC: 0001-01-01T00:00+01:00 has no UTC date
        except OverflowError:
            raise ValueError("outcomeTimestamp is out of range once converted to UTC") from None
        return value

    @model_validator(mode="after")
    def _suggestions_match_outcome(self) -> "FeedbackEntry":
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is 'accepted'")
        if self.outcome == "overridden" and self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions must be absent when outcome is 'overridden'")
        return self


class FeedbackRequest(Tolerant):
    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=100)
