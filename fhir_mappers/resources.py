"""Flatten what the EHR sent (prefetch values, search Bundles, single resources) into resources.

OperationOutcomes (a failed prefetch query, a search warning, a batch entry's outcome) are
collected apart so that they are reported, never mistaken for clinical data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir_mappers.errors import MappingError

_MAX_DEPTH = 5  # Bundles inside Bundles: deeper nesting is not something an EHR sends
_NOT_PLAIN = frozenset({"Bundle", "OperationOutcome"})  # what _walk opens or collects apart


@dataclass
class OperationOutcomes:
    """Collector for the OperationOutcomes met while iterating, and for what was skipped."""

    items: list[dict[str, Any]] = field(default_factory=list[Any])
    skipped: int = 0  # values that were neither resources nor Bundles

    def messages(self) -> list[str]:
        out = []
        for outcome in self.items:
            issues = outcome.get("issue")
            for issue in issues if isinstance(issues, list) else []:
                if not isinstance(issue, dict):
                    continue
                severity = issue.get("severity") if isinstance(issue.get("severity"), str) else "?"
                text = issue.get("diagnostics")
                details = issue.get("details")
                if not isinstance(text, str) and isinstance(details, dict):
                    text = details.get("text")
                out.append(f"{severity}: {text if isinstance(text, str) else issue.get('code', 'no detail')}")
            if not isinstance(issues, list) or not issues:
                out.append(f"OperationOutcome {outcome.get('id', '')} without issues".strip())
        return out


def iter_resources(
    values: Iterable[object] | dict[str, Any], outcomes: OperationOutcomes | None = None
) -> Iterator[dict[str, Any]]:
    """Yield every resource in `values`: Bundle entries (nested Bundles too) and single
    resources. None and non-resources are skipped; OperationOutcomes go to `outcomes`.

    `values` may also be a CDS Hooks `prefetch` dict (key -> resource or None).
    """
    if isinstance(values, dict):
        values = [values] if "resourceType" in values else list(values.values())
    elif isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise MappingError(f"expected an iterable of FHIR resources, got {type(values).__name__}")
    sink = outcomes if outcomes is not None else OperationOutcomes()
    for value in values:
        if type(value) is dict and type(value.get("resourceType")) is str and value["resourceType"] not in _NOT_PLAIN:
            yield value  # the common case (a plain resource), without a walk
            continue
        found: list[dict[str, Any]] = []
        _walk(value, sink, 0, found)
        yield from found


def _walk(value: object, sink: OperationOutcomes, depth: int, found: list[dict[str, Any]]) -> None:
    """Append the resources in `value` to `found` (a list, not nested generators: Bundles hold
    dozens of entries and every call walks them)."""
    if not isinstance(value, dict):
        if value is not None:
            sink.skipped += 1
        return
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str):
        sink.skipped += 1
        return
    if resource_type == "OperationOutcome":
        sink.items.append(value)
        return
    if resource_type != "Bundle":
        found.append(value)
        return
    if depth >= _MAX_DEPTH:
        sink.skipped += 1
        return
    entries = value.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            sink.skipped += 1
            continue
        response = entry.get("response")
        if isinstance(response, dict) and isinstance(response.get("outcome"), dict):
            sink.items.append(response["outcome"])
        if "resource" in entry:
            _walk(entry["resource"], sink, depth + 1, found)
