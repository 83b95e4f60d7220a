"""The root of this project's exceptions.

It sits in the leaf package because every layer may import it. ``cds_service.errors`` answers
any of them that reaches the HTTP layer in one place. Subclasses keep their built-in bases
(``ValueError``, ``LookupError``), so ``except ValueError`` callers still catch them.
"""

from __future__ import annotations


class HccCdsError(Exception):
    """An error this project raises on purpose."""
