"""CDS Hooks 2.0 response objects (§CDS Service Response), as we emit them.

``extra="forbid"``: these are our own artifacts, so a misspelt field is a bug caught in tests,
not a silently ignored attribute in an EHR. ``exclude_none`` on dump keeps the JSON free of nulls,
which the spec forbids ("JSON elements SHALL NOT be null").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Coding(_Strict):
    system: str | None = None
    code: str
    display: str | None = None


class Source(_Strict):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(_Strict):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None

    @model_validator(mode="after")
    def _target_matches_type(self) -> Action:
        if self.type in ("create", "update") and self.resource is None:
            raise ValueError(f"a {self.type} action needs a resource")
        if self.type == "delete" and not self.resourceId:
            raise ValueError("a delete action needs a resourceId")
        return self


class Suggestion(_Strict):
    label: str
    uuid: str
    isRecommended: bool | None = None
    actions: list[Action] = Field(min_length=1)


class Link(_Strict):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class Card(_Strict):
    uuid: str
    summary: str = Field(max_length=139)  # "<140-character" (CDS Hooks 2.0 §Card)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None

    @model_validator(mode="after")
    def _selection_behaviour_with_suggestions(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when suggestions are present")
        return self


class CdsResponse(_Strict):
    cards: list[Card] = Field(default_factory=list)
