"""What the layers below the cards found, as data the cards can word in the clinician's language.

``fhir_mappers`` and ``models`` decide *what* to say: a stable id, an English template and its
values. The cards decide how it reads, through their catalogue (``cards.i18n``), where the
template is the message id (``babel.cfg`` extracts ``Note``'s second argument). A Note *is* its
English text, so logs, the audit and every reader of the English string go on as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Union

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


class Drug(str):
    """A canonical drug name (terminology.yaml) as a note's value: the cards show its generic name
    in the clinician's language."""


NoteValue = Union[str, int, float, "Note", Drug]


class Note(str):
    """English text that also carries its message: ``id`` (stable, for tests and analysis),
    ``template`` (the catalogue's message id, ``%(name)s`` placeholders) and ``params``."""

    id: str
    template: str
    params: Mapping[str, NoteValue]

    def __new__(cls, id: str, template: str, /, **params: NoteValue) -> Note:
        note = super().__new__(cls, template % params)
        note.id, note.template, note.params = id, template, MappingProxyType(params)
        return note

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle keep the message
        return (_rebuild, (self.id, self.template, dict(self.params)))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Kept as a Note in a model field (pydantic would make it a plain str); JSON is the English."""
        return core_schema.is_instance_schema(cls, serialization=core_schema.to_string_ser_schema())


def joined(parts: Sequence[str]) -> str:
    """``"; ".join(parts)`` that stays a Note, so that each part keeps its own translation."""
    if len(parts) == 1:
        return parts[0]
    return Note("join.semicolon", "%(first)s; %(rest)s", first=parts[0], rest=joined(parts[1:]))


def _rebuild(id: str, template: str, params: dict[str, NoteValue]) -> Note:
    return Note(id, template, **params)
