"""Token search values in our prefetch templates are sent percent-encoded.

A SMART launcher's FHIR proxy (smart-launcher-v2) collapses every `//` in the URL it forwards,
so `code=http://loinc.org|1834-1` reaches the FHIR server as `http:/loinc.org|1834-1` and finds
nothing. FHIR R4 search (search.html#escaping): values are URL-encoded; commas between OR alternatives
stay literal, and a `,` `|` `$` `\\` inside a system or code is escaped with `\\` before encoding.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
import requests

from cds_service.prefetch import render
from cds_service.services import _TUMOUR_KEYS, LAB_KEYS

TIMEOUT = 10
TOKEN_PARAMETERS = {"code"}  # the token search parameters our templates use
LOCAL_SYSTEM = "http://lis.hospital.example.cn/codes"
LOCAL_AFP = "AFP,1|b\\$"  # every FHIR search special character at once
HOSPITAL_FILE = f"""\
version: 1
extends: default
labs:
  afp: [{{system: "{LOCAL_SYSTEM}", code: "{LOCAL_AFP.replace(chr(92), chr(92) * 2)}"}}]
"""


def _raw_parameters(query: str) -> list[tuple[str, str]]:
    """name=value pairs as written in the URL, not decoded."""
    return [tuple(pair.split("=", 1)) for pair in query.split("&")]  # type: ignore[misc]


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split at each `separator` not escaped by `\\` (escapes are kept, for `_unescape`)."""
    parts, current, chars = [], "", iter(text)
    for char in chars:
        if char == "\\":
            current += char + next(chars, "")
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def decode_tokens(raw: str) -> set[tuple[str, str]]:
    """What a FHIR server reads from a token parameter value: URL-decode, then split the OR
    alternatives on unescaped commas and system from code on the unescaped `|`."""
    decoded = unquote(raw, errors="strict")
    pairs = set()
    for alternative in _split_unescaped(decoded, ","):
        system, code = _split_unescaped(alternative, "|")
        pairs.add((_unescape(system), _unescape(code)))
    return pairs


def expected_tokens(terminology, keys: dict[str, tuple[str, ...]]) -> set[tuple[str, str]]:
    return {
        (coding.system, coding.code)
        for section, names in keys.items()
        for name in names
        for coding in terminology.codes(section, name)
    }


@pytest.mark.parametrize("local", [False, True], ids=["shipped terminology", "hospital terminology"])
def test_discovery_token_values_are_percent_encoded_and_round_trip(live_server, tmp_path, local):
    overrides = {}
    if local:
        path = tmp_path / "hospital.yaml"
        path.write_text(HOSPITAL_FILE, encoding="utf-8")
        overrides["terminology_path"] = path
    server = live_server(**overrides)
    terminology = server.runtime.pipeline.terminology
    wanted = {
        "labs": expected_tokens(terminology, {"labs": tuple(LAB_KEYS)}),
        "tumour": expected_tokens(terminology, _TUMOUR_KEYS),
    }
    if local:
        assert (LOCAL_SYSTEM, LOCAL_AFP) in wanted["labs"]
    discovery = requests.get(f"{server.url}/cds-services", timeout=TIMEOUT).json()
    for service in discovery["services"]:
        coded = {}
        for key, template in service["prefetch"].items():
            # After the EHR fills the patient token, no `//` is left for a proxy to collapse.
            filled = render(template, {"patientId": "hcc-first-line", "userId": "Practitioner/dr-1"})
            assert "//" not in filled, (key, filled)
            _path, _, query = template.partition("?")
            for name, value in _raw_parameters(query) if query else []:
                if name.partition(":")[0] not in TOKEN_PARAMETERS:
                    continue
                assert not set("|:/\\ ") & set(value), (key, value)
                coded[key] = decode_tokens(value)
        assert coded == wanted, service["id"]


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("http://loinc.org", "1834-1"),
        ("urn:oid:2.16.840.1.113883.6.1", "1834-1"),
        ("http://lis.example/a,b", "x|y"),
        ("http://lis.example", "50$ \\ 中"),
        ("http://lis.example\\", "ends with a backslash\\"),
    ],
)
def test_search_token_round_trips(system, code):
    from cds_service.services import search_token

    value = search_token(system, code)
    assert re.fullmatch(r"[A-Za-z0-9\-._~%]+", value), value
    assert decode_tokens(f"{value},{value}") == {(system, code)}


def test_patient_token_is_still_filled(live_server):
    server = live_server()
    labs = next(t for t in server.runtime.services["hcc-systemic-therapy-select"].templates if t.key == "labs")
    filled = render(labs.query, {"patientId": "p-1"})
    assert filled.startswith("Observation?patient=p-1&code=http%3A%2F%2Floinc.org%7C1834-1,")
