"""A bad configuration stops ``python -m cds_service`` before any worker forks (issue 25): exit 2,
one line per problem naming its ``CDS_…`` variable, no traceback, no secret echoed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from processes import ROOT, free_port

SESSION_SECRET = "smart-session-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
DATABASE_PASSWORD = "db-pa55word-never-printed"


def serve(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if not key.startswith("CDS_")}
    env = {
        **base,
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/feedback.sqlite3",
        "CDS_SMART_SESSION_SECRET": SESSION_SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "cds_service", *(args or ("serve",))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess, *says: str) -> list[str]:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "Booting worker" not in output
    assert SESSION_SECRET not in output and SESSION_SECRET[-22:] not in output
    assert DATABASE_PASSWORD not in output
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("configuration error: ") for line in lines), result.stderr
    for text in says:
        assert any(text in line for line in lines), (text, result.stderr)
    return lines


def production(**env: str) -> dict[str, str]:
    return {
        "CDS_ENVIRONMENT": "production",
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        "CDS_FHIR_SERVER_ALLOWLIST": '["https://fhir.example.org/r4"]',
        "CDS_JWT_ISSUERS": '{"https://ehr.example.org": "https://ehr.example.org/jwks.json"}',
        "CDS_AUDIT_PATIENT_KEYS": '{"test-2026": "test-only-patient-key-of-at-least-32-bytes"}',
        **env,
    }


def test_a_missing_fhir_server_allowlist_is_named_without_echoing_the_session_secret(tmp_path):
    result = serve(tmp_path, **production(CDS_FHIR_SERVER_ALLOWLIST="[]"))
    assert_refused(result, "production needs CDS_FHIR_SERVER_ALLOWLIST")


def test_every_problem_gets_its_own_line(tmp_path):
    # Values are checked first, every one of them; the production rules once the values are valid.
    lines = assert_refused(serve(tmp_path, CDS_WORKERS="0", CDS_THREADS="many"), "CDS_WORKERS:", "CDS_THREADS:")
    assert len(lines) == 2
    result = serve(tmp_path, **production(CDS_FHIR_SERVER_ALLOWLIST="[]", CDS_PUBLIC_BASE_URL="http://cds.example.org"))
    lines = assert_refused(result, "CDS_FHIR_SERVER_ALLOWLIST", "CDS_PUBLIC_BASE_URL")
    assert len(lines) == 2


def test_missing_jwt_issuers_is_reported_before_the_workers_start(tmp_path):
    result = serve(tmp_path, **production(CDS_JWT_ISSUERS="{}"))
    assert_refused(result, "CDS_JWT_ISSUERS names no trusted issuer")


def test_a_terminology_typo_names_the_file_and_the_key(tmp_path):
    mapping = tmp_path / "terminology.yaml"
    mapping.write_text('version: 1\nextends: default\nlabs:\n  afp_typo:\n    - system: loinc\n      code: "1834-1"\n')
    result = serve(tmp_path, CDS_TERMINOLOGY_PATH=str(mapping))
    assert_refused(result, "CDS_TERMINOLOGY_PATH", "afp_typo")


def test_a_missing_model_artifact_is_named(tmp_path):
    assert_refused(serve(tmp_path, CDS_MODEL_DIR=str(tmp_path / "no-model")), "CDS_MODEL_DIR: ")


def test_a_ca_bundle_that_is_not_a_pem_file_is_named(tmp_path):
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("this is not a certificate\n")
    assert_refused(serve(tmp_path, CDS_CA_BUNDLE=str(not_pem)), "CDS_CA_BUNDLE: ", "no PEM certificate")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CDS_JWT_ISSUERS": "not json"}, "CDS_JWT_ISSUERS: is not valid JSON"),
        ({"CDS_ENVIRONMENT": "prod"}, "CDS_ENVIRONMENT: Input should be 'demo' or 'production'"),
        (
            {"CDS_DATABASE_URL": f"postgresql+psycopg://cds:{DATABASE_PASSWORD}@db/cds", "CDS_THREADS": "many"},
            "CDS_THREADS: Input should be a valid integer",
        ),
    ],
)
def test_a_bad_value_is_named_never_echoed(tmp_path, env, says):
    assert_refused(serve(tmp_path, **env), says)


def test_other_commands_refuse_a_bad_configuration_too(tmp_path):
    assert_refused(
        serve(tmp_path, "migrate", **production(CDS_FHIR_SERVER_ALLOWLIST="[]")), "CDS_FHIR_SERVER_ALLOWLIST"
    )


def test_production_needs_an_audit_patient_key_of_32_bytes_and_never_echoes_it(tmp_path):
    assert_refused(
        serve(tmp_path, **production(CDS_AUDIT_PATIENT_KEYS="{}")), "production needs CDS_AUDIT_PATIENT_KEYS"
    )
    short = "short-patient-key-secret"
    result = serve(tmp_path, **production(CDS_AUDIT_PATIENT_KEYS=json.dumps({"2026-01": short})))
    assert_refused(result, "CDS_AUDIT_PATIENT_KEYS: the secret of key id '2026-01' is shorter than 32 bytes")
    assert short not in result.stdout + result.stderr
