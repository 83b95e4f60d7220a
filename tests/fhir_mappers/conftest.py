"""Fixtures for the fhir_mappers tests: the shipped terminology and the JSON fixture files."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import pytest

from fhir_mappers.terminology import Terminology, load_terminology

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def _read(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def terminology() -> Terminology:
    return load_terminology()


@pytest.fixture
def fixture():
    """fixture("labs_searchset.json") -> a fresh deep copy of the parsed file."""
    return lambda name: copy.deepcopy(_read(name))
