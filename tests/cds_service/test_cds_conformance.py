"""Conformance with CDS Hooks 2.0, using the spec's own examples (tests/cds_service/spec_examples).

The JSON Schemas in tests/cds_service/schemas are derived from the spec's tables; they are first
proven against the spec's example responses, then applied to what our real server answers.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import jsonschema
import pytest
import requests
from cds_testkit import SELECT_SERVICE, SIGN_SERVICE, all_null_prefetch, schema, sorafenib_order, spec_example

RESPONSE_SCHEMA = "cds-hooks-2.0-response.schema.json"
DISCOVERY_SCHEMA = "cds-hooks-2.0-discovery.schema.json"
TIMEOUT = 10


def validator(name: str, definition: str | None = None) -> jsonschema.Draft202012Validator:
    document = schema(name)
    if definition is not None:  # validate against one $defs entry (spec fragments)
        document = {"$schema": document["$schema"], "$defs": document["$defs"], "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(document, format_checker=jsonschema.FormatChecker())


def errors(v: jsonschema.Draft202012Validator, instance) -> list[tuple[list, str]]:
    return [(list(e.absolute_path), e.message) for e in v.iter_errors(instance)]


# --- the schemas, proven against the spec's own examples ----------------------------------------


@pytest.mark.parametrize("name", [RESPONSE_SCHEMA, DISCOVERY_SCHEMA])
def test_schemas_are_valid_draft_2020_12(name):
    jsonschema.Draft202012Validator.check_schema(schema(name))


@pytest.mark.parametrize("example", ["response-empty.json", "response-example.json"])
def test_spec_example_responses_validate(example):
    assert errors(validator(RESPONSE_SCHEMA), spec_example(example)) == []


@pytest.mark.parametrize(
    ("example", "path", "missing", "fix"),
    [
        # §Example "using autolaunchable": the card has no `indicator`, which §Card Attributes REQUIRES.
        ("response-autolaunchable.json", ["cards", 0], "indicator", lambda r: r["cards"][0].update(indicator="info")),
        # §System Action: the action has no `description`, which §Action REQUIRES.
        (
            "response-system-action.json",
            ["systemActions", 0],
            "description",
            lambda r: r["systemActions"][0].update(description="Update the MRI order"),
        ),
    ],
)
def test_spec_examples_that_contradict_the_spec_tables_fail_only_on_that_field(example, path, missing, fix):
    """Two spec examples omit a field the spec's own table marks REQUIRED; the schema follows the table."""
    response = spec_example(example)
    assert errors(validator(RESPONSE_SCHEMA), response) == [(path, f"'{missing}' is a required property")]
    fix(response)
    assert errors(validator(RESPONSE_SCHEMA), response) == []


@pytest.mark.parametrize(
    ("fragment", "definition"),
    [("fragment-source.json", "source"), ("fragment-override-reasons.json", "overrideReason")],
)
def test_spec_fragments_validate(fragment, definition):
    example = spec_example(fragment)
    values = example["overrideReasons"] if definition == "overrideReason" else [example["source"]]
    for value in values:
        assert errors(validator(RESPONSE_SCHEMA, definition), value) == []


def test_spec_action_examples_validate():
    for action in spec_example("fragment-actions.json"):
        assert errors(validator(RESPONSE_SCHEMA, "action"), action) == []


@pytest.mark.parametrize("example", ["discovery.json", "discovery-with-extension.json"])
def test_spec_discovery_examples_validate(example):
    assert errors(validator(DISCOVERY_SCHEMA), spec_example(example)) == []


@pytest.mark.parametrize(
    ("card_change", "complaint"),
    [
        ({"indicator": "urgent"}, "is not one of"),
        ({"summary": "x" * 140}, "is too long"),
        ({"suggestions": [{"label": "Switch to lenvatinib"}]}, "'selectionBehavior' is a dependency"),
        ({"selectionBehavior": "all"}, "is not one of"),
        ({"source": {"url": "https://example.org"}}, "'label' is a required property"),
        ({"overrideReasons": [{"system": "http://example.org", "code": "x"}]}, "'display' is a required property"),
        (
            {"links": [{"label": "App", "url": "https://app.example", "type": "absolute", "appContext": "x"}]},
            "should not be valid",
        ),
        ({"links": [{"label": "App", "url": "https://app.example", "type": "launch"}]}, "is not one of"),
        ({"sumary": "typo"}, "Additional properties are not allowed"),
        (
            {
                "selectionBehavior": "at-most-one",
                "suggestions": [{"label": "A", "isRecommended": True}, {"label": "B", "isRecommended": True}],
            },
            "expected at most 1",
        ),
        (
            {
                "selectionBehavior": "any",
                "suggestions": [{"label": "A", "actions": [{"type": "create", "description": "d"}]}],
            },
            "'resource' is a required property",
        ),
    ],
)
def test_schema_rejects_what_the_spec_forbids(card_change, complaint):
    card = {
        "summary": "Estimated risk of primary sorafenib resistance",
        "indicator": "info",
        "source": {"label": "Lei 2025"},
    }
    card.update(card_change)
    messages = " | ".join(message for _, message in errors(validator(RESPONSE_SCHEMA), {"cards": [card]}))
    assert complaint in messages


# --- our discovery -------------------------------------------------------------------------------

_TOKEN = re.compile(r"\{\{(.*?)\}\}")
_ALLOWED_TOKENS = {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
# Context fields the order-select / order-sign hook pages mark "Prefetch Token: Yes".
_ORDER_CONTEXT_TOKENS = {"context.userId", "context.patientId", "context.encounterId"}
_DATE_PREFIXES = ("eq", "lt", "gt", "ge", "le")


def check_prefetch_template(template: str) -> list[str]:
    """Problems with a template under §Prefetch tokens and §Prefetch query restrictions."""
    problems = []
    for token in _TOKEN.findall(template):
        if token.strip() != token or (token not in _ORDER_CONTEXT_TOKENS and token not in _ALLOWED_TOKENS):
            problems.append(f"token {{{{{token}}}}} is not a root-level order hook context field")
    if template.count("{{") != len(_TOKEN.findall(template)):
        problems.append("unbalanced token delimiters")
    path, _, query = template.partition("?")
    segments = path.split("/")
    if not re.fullmatch(r"[A-Z][A-Za-z]+", segments[0]):
        problems.append(f"'{segments[0]}' is not a FHIR resource type")
    if len(segments) == 2:  # instance read
        if query:
            problems.append("an instance read takes no search parameters")
        if not _TOKEN.fullmatch(segments[1]) and not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", segments[1]):
            problems.append("read id is neither a token nor a FHIR id")
        return problems
    if len(segments) != 1:
        problems.append("only type-level searches and instance reads are allowed")
    for name, value in parse_qsl(query, keep_blank_values=True):
        base, _, modifier = name.partition(":")
        if base in ("patient", "subject", "encounter"):
            # a resource reference: the id, or Type/id where the parameter allows several types
            ok = not modifier and bool(_TOKEN.fullmatch(value.removeprefix("Patient/")))
        elif base == "code":
            ok = modifier in ("", "in") and all(
                re.fullmatch(r"[^|,\s]+\|[^|,\s]+|[^|,\s]+", v) for v in value.split(",")
            )
        elif base == "date":
            ok = not modifier and value[:2] in _DATE_PREFIXES
        elif base == "_count":
            ok = value.isdigit()
        elif base == "_sort":
            ok = bool(re.fullmatch(r"-?[a-z\-]+", value))
        elif base == "_include":
            # Outside the recommended subset, deliberately: the medication searches include the
            # Medications they reference (an EHR that ignores it is covered by reading them by id).
            ok = not modifier and value == f"{segments[0]}:medication"
        else:
            ok = False
        if not ok:
            problems.append(f"search parameter {name}={value} is outside the spec's recommended subset")
    return problems


def test_prefetch_checker_catches_out_of_subset_templates():
    assert check_prefetch_template("Observation?patient={{context.patientId}}&code:text=afp")
    assert check_prefetch_template("Observation?patient={{context.draftOrders.id}}")
    assert check_prefetch_template("Observation?_has:Condition:subject:code=1")
    assert check_prefetch_template("Patient/{{context.patientId}}?_elements=id")
    assert check_prefetch_template("Observation?patient={{context.patientId}}&date=2024")
    assert check_prefetch_template("MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:subject")
    assert check_prefetch_template("MedicationRequest?patient={{context.patientId}}&_revinclude=Provenance:target")
    assert not check_prefetch_template(
        "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication"
    )
    assert not check_prefetch_template(
        "Observation?patient={{context.patientId}}&date=ge2024-01-01&_sort=-date&_count=1"
    )
    assert not check_prefetch_template("Patient/{{context.patientId}}")


def test_our_discovery_validates_and_offers_order_select_and_order_sign(server):
    response = requests.get(f"{server.url}/cds-services", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    discovery = response.json()
    assert errors(validator(DISCOVERY_SCHEMA), discovery) == []
    by_hook = {service["hook"]: service for service in discovery["services"]}
    assert set(by_hook) == {"order-select", "order-sign"}
    assert by_hook["order-select"]["id"] == SELECT_SERVICE
    assert by_hook["order-sign"]["id"] == SIGN_SERVICE
    for service in discovery["services"]:
        assert service["prefetch"], service["id"]
        for key, template in service["prefetch"].items():
            assert check_prefetch_template(template) == [], (service["id"], key, template)
        assert "{{context.patientId}}" in service["prefetch"]["patient"]


def test_our_prefetch_keys_are_the_templates_the_pipeline_resolves(server):
    discovery = requests.get(f"{server.url}/cds-services", timeout=TIMEOUT).json()
    for service in discovery["services"]:
        templates = server.runtime.services[service["id"]].templates
        assert service["prefetch"] == {t.key: t.query for t in templates}


# --- our answers to the spec's order examples ----------------------------------------------------


def _post(server, service_id: str, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/cds-services/{service_id}", json=body, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("example", "service_id"), [("order-select-r4.json", SELECT_SERVICE), ("order-sign-r4.json", SIGN_SERVICE)]
)
def test_spec_order_example_with_its_data_prefetched_as_null_gets_no_cards(server, example, service_id):
    """Amoxicillin and a pureed diet are no HCC systemic therapy: the answer is no card, and valid."""
    body = spec_example(example)
    body["prefetch"] = all_null_prefetch([t.key for t in server.runtime.services[service_id].templates])
    response = _post(server, service_id, body)
    assert response.status_code == 200, response.text
    assert errors(validator(RESPONSE_SCHEMA), response.json()) == []
    assert response.json() == {"cards": []}


@pytest.mark.parametrize(
    ("example", "service_id"), [("order-select-r4.json", SELECT_SERVICE), ("order-sign-r4.json", SIGN_SERVICE)]
)
def test_spec_order_example_as_published_gets_no_cards(server, example, service_id):
    """Without prefetch or fhirServer: no 412, since an irrelevant order needs no data."""
    response = _post(server, service_id, spec_example(example))
    assert response.status_code == 200, response.text
    assert errors(validator(RESPONSE_SCHEMA), response.json()) == []
    assert response.json() == {"cards": []}


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_sorafenib_order_answer_validates(server, hook):
    service_id = SELECT_SERVICE if hook == "order-select" else SIGN_SERVICE
    body = sorafenib_order(hook)
    body["prefetch"] = all_null_prefetch([t.key for t in server.runtime.services[service_id].templates])
    response = _post(server, service_id, body)
    assert response.status_code == 200, response.text
    assert errors(validator(RESPONSE_SCHEMA), response.json()) == []
