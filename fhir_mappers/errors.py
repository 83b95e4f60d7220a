"""Exceptions raised by fhir_mappers.

Mapping code turns bad *resources* into missing features with a reason; it raises only when
the input as a whole is unusable (e.g. the caller passed something that is not a list of
resources) or when the terminology file is broken.
"""

from __future__ import annotations

from hcc_evidence.errors import HccCdsError


class MappingError(HccCdsError, ValueError):
    """The input could not be mapped at all. The message says why."""


class TerminologyError(MappingError):
    """The terminology mapping file is missing, unreadable or malformed."""
