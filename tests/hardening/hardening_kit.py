"""Helpers for the hardening tests: the service as deployed (gunicorn via ``python -m cds_service``)
with its JSON logs in a file, worker pids, request bodies. Real processes and sockets only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from fhir_factory import (  # noqa: E402
    AMOXICILLIN,
    SORAFENIB,
    afp,
    alt,
    full_prefetch,
    hcc_hbv_conditions,
    hook_request,
    medication_request,
)
from issued_cards import record_issued_cards  # noqa: E402
from processes import ServiceProcess, free_port, serving  # noqa: E402

from cds_service.services import prefetch_templates  # noqa: E402
from cds_service.store import Store  # noqa: E402
from fhir_mappers.terminology import load_terminology  # noqa: E402

SELECT = "hcc-systemic-therapy-select"
SIGN = "hcc-systemic-therapy-sign"
# One FHIR request per prefetch key when nothing was prefetched (the shipped terminology).
PREFETCH_KEYS = len(prefetch_templates(load_terminology()))


@contextmanager
def gunicorn_service(tmp_path: Path, **env: str) -> Iterator[ServiceProcess]:
    """``python -m cds_service`` on a free loopback port; stdout+stderr (JSON logs) to a file."""
    port = free_port()
    settings = {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path}/feedback.sqlite3",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{port}"),
        **env,
    }
    with serving(
        [sys.executable, "-m", "cds_service"], env=settings, port=port, log_path=tmp_path / f"service-{port}.log"
    ) as service:
        yield service


def sorafenib_call(patient: str = "p1", **kw) -> dict:
    """A first-line sorafenib order-select with everything prefetched."""
    draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-1", patient=patient)
    resources = [
        afp(1250, "2026-11-10", patient=patient),
        alt(65, "2026-11-12", patient=patient),
        *hcc_hbv_conditions(patient),
    ]
    return hook_request("order-select", [draft], prefetch=full_prefetch(resources, patient), patient=patient, **kw)


def sorafenib_call_to_fetch(fhir_server: str, token: str = "stub-token", patient: str = "p1") -> dict:
    """A sorafenib order-select with nothing prefetched: every key is fetched from fhir_server."""
    draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-1", patient=patient)
    return hook_request("order-select", [draft], fhir_server=fhir_server, token=token, patient=patient)


def irrelevant_call() -> dict:
    draft = medication_request(AMOXICILLIN, "2026-11-20", status="draft", rid="draft-amox")
    return hook_request("order-select", [draft])


def issue_cards(database_url: str, service_id: str, cards: list[str]) -> None:
    """Audit, before the service starts, an assessment by ``service_id`` that issued ``cards``:
    feedback is stored only on cards the service issued (``feedback_body``'s need no suggestion)."""
    store = Store(database_url)
    try:
        record_issued_cards(store, service_id, dict.fromkeys(cards, ()))
    finally:
        store.database.dispose()


def feedback_body(card: str) -> dict:
    return {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-20T10:00:00Z",
                "overrideReason": {"userComment": "not now"},
            }
        ]
    }


def metric_total(url: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples whose labels include ``labels``."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
