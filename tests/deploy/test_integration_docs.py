"""docs/integration.md lists every setting, with its env var and default, exactly as settings.py has it.

When a setting changes, regenerate the table: ``.venv/bin/python tests/deploy/test_integration_docs.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integration.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
sys.path.insert(0, str(ROOT))

from cds_service.settings import Settings  # noqa: E402

# Meaning of the settings whose Field has no description (settings.py's own text wins when it has one).
NOTES = {
    "environment": "`production` requires JWT (`CDS_JWT_*`) and `CDS_FHIR_SERVER_ALLOWLIST`.",
    "host": "Listening address (`0.0.0.0` in a container).",
    "port": "Listening port.",
    "database_url": "Feedback and audit store: SQLite file (embedded default) or `postgresql+psycopg://user:pass@host/db`.",
    "workers": "gunicorn worker processes.",
    "threads": "Threads per gunicorn worker that run requests (each read whole before a thread takes it).",
    "terminology_path": "Your terminology mapping file (YAML); none = the shipped `fhir_mappers/terminology.yaml`.",
    "model_dir": "Directory of the model artifact (`bundle.json`); none = the shipped `models/artifacts/`.",
    "lab_lookback_days": "Oldest lab result used, in days before the order.",
    "imaging_lookback_days": "Oldest imaging result used, in days before the order.",
    "fetch_budget_seconds": "Time allowed for fetching missing prefetch data from `fhirServer`.",
    "fetch_max_bytes": "Largest FHIR response read during that fetch.",
    "fetch_max_pages": "Most Bundle pages followed per query.",
    "fetch_workers": "Parallel fetches per process.",
    "jwt_required": "Require the EHR's bearer JWT; none = on in production, off in demo.",
    "jwt_jku_allowlist": "JWK Set URLs a JWT header `jku` may point to (JSON list).",
    "jwt_algorithms": "Accepted JWT signature algorithms.",
    "jwt_leeway_seconds": "Clock skew tolerated on `exp`/`iat`.",
    "jwt_max_token_bytes": "Largest accepted JWT.",
    "smart_client_id": "OAuth2 client id of the SMART app, as registered in the EHR.",
    "smart_scope": "Scopes the SMART app asks for.",
    "smart_timeout_seconds": "Timeout of the SMART app's calls to the EHR.",
    "cors_origins": "Origins allowed by CORS (JSON list).",
    "max_request_bytes": "Largest accepted request body.",
    "log_level": "Python log level (JSON logs on stderr).",
}


def meaning(name: str, field) -> str:
    return field.description or NOTES.get(name, "")


def env_var(name: str, field) -> str:
    alias = field.validation_alias
    if alias is not None and getattr(alias, "choices", None):
        return alias.choices[0]
    return f"CDS_{name.upper()}"


def default_text(field) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(none)"
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value)
    return str(value)


def type_text(field) -> str:
    text = getattr(field.annotation, "__name__", None) if not hasattr(field.annotation, "__args__") else None
    text = text or str(field.annotation)
    return re.sub(r"(typing\.|pathlib\.|pydantic\.types\.)", "", text).replace("NoneType", "None")


def settings_table() -> str:
    rows = ["| Env var | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        cells = [f"`{env_var(name, field)}`", f"`{type_text(field)}`", f"`{default_text(field)}`", meaning(name, field)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def test_every_setting_has_a_meaning():
    assert not [n for n, f in Settings.model_fields.items() if not meaning(n, f)], (
        "add it to NOTES or a Field description"
    )


def documented_table() -> str:
    text = DOC.read_text()
    return text[text.index(START) + len(START) : text.index(END)].strip()


def test_settings_table_matches_settings():
    assert documented_table() == settings_table(), (
        "docs/integration.md is out of date with cds_service/settings.py: "
        "run .venv/bin/python tests/deploy/test_integration_docs.py"
    )


def test_metric_names_in_docs_exist():
    from cds_service import observability

    source = Path(observability.__file__).read_text()
    documented = set(re.findall(r"`(cds_[a-z_]+)`", DOC.read_text()))
    assert {"cds_http_requests_total", "cds_fetch_fallbacks_total", "cds_cards_total", "cds_model_info"} <= documented
    for name in documented:
        assert re.sub(r"_(bucket|count|sum)$", "", name) in source, name


def test_linked_files_exist():
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", DOC.read_text()):
        assert (DOC.parent / link).resolve().exists(), link


if __name__ == "__main__":
    text = DOC.read_text()
    text = text[: text.index(START) + len(START)] + "\n" + settings_table() + "\n" + text[text.index(END) :]
    DOC.write_text(text)
    print(f"updated {DOC.relative_to(ROOT)}")
