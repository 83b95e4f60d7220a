"""Issue 26 (items 1, 3, 4): one model for card and app, one exception root answered in one place,
CORS by the app's own hook.

The service runs as a real HTTP server; the model directory is a copy of the shipped model under
another version string, set through ``CDS_MODEL_DIR`` as an operator would.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import requests
from fhir_factory import SORAFENIB, afp, alt, full_prefetch, hcc_hbv_conditions, hook_request, medication_request
from flask import Flask
from hook_calls import post_hook

from cds_service.smart.oauth import SmartError
from hcc_evidence.errors import HccCdsError
from models.artifacts import SHIPPED_DIR, read_bundle, save_bundle

SELECT = "hcc-systemic-therapy-select"
PACKAGES = ("cds_service", "cards", "models", "fhir_mappers", "hcc_evidence")
TIMEOUT = 10


def test_the_card_and_the_smart_app_show_the_model_of_cds_model_dir(live_server, tmp_path, monkeypatch):
    shipped = read_bundle(SHIPPED_DIR)
    version = f"{shipped.metadata.model_version}-layering-test"
    renamed = shipped.model_copy(update={"metadata": shipped.metadata.model_copy(update={"model_version": version})})
    save_bundle(renamed, tmp_path / "model")
    monkeypatch.setenv("CDS_MODEL_DIR", str(tmp_path / "model"))
    server = live_server()

    record = [afp(1250.0, "2026-11-10"), alt(65.0, "2026-11-12"), *hcc_hbv_conditions()]
    draft = medication_request(SORAFENIB, "2026-11-20", status="draft", rid="draft-sorafenib")
    body = hook_request("order-select", [draft], prefetch=full_prefetch(record))
    (card,) = post_hook(server, body, SELECT)["cards"]
    assert f"model {version})" in card["detail"]

    smart_card = requests.get(f"{server.url}/smart/model-card", timeout=TIMEOUT)
    assert smart_card.status_code == 200 and version in smart_card.text
    assert requests.get(f"{server.url}/model-card.json", timeout=TIMEOUT).json()["model_version"] == version
    metrics = requests.get(f"{server.url}/metrics", timeout=TIMEOUT).text
    assert f'cds_model_info{{version="{version}"}} 1.0' in metrics
    # The SMART app computes with the very objects the hook pipeline does.
    state = server.runtime
    assert state.pipeline.assessor is state.assessor and state.assessor.bundle.version == version


def _project_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names = [package_name] + [
            m.name for m in pkgutil.walk_packages(package.__path__, f"{package_name}.") if ".migrations" not in m.name
        ]
        for name in names:
            module = importlib.import_module(name)
            for cls in vars(module).values():
                if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name:
                    found[f"{name}.{cls.__qualname__}"] = cls
    return list(found.values())


def test_every_exception_of_the_project_derives_from_one_root():
    exceptions = _project_exceptions()
    assert len(exceptions) >= 13, exceptions
    assert [cls for cls in exceptions if not issubclass(cls, HccCdsError)] == []
    # Built-in bases are kept: callers that catch ValueError or LookupError still catch these.
    from cards.suggestions import UncodedDrug
    from cds_service.ssrf import FhirServerRefused
    from fhir_mappers.errors import TerminologyError
    from models.training import TrainingDataError

    assert issubclass(TerminologyError, ValueError) and issubclass(TrainingDataError, ValueError)
    assert issubclass(FhirServerRefused, ValueError) and issubclass(UncodedDrug, LookupError)


def test_a_project_error_that_reaches_the_http_layer_is_a_json_500_naming_nothing_internal(live_server):
    server = live_server()

    def fails():
        raise SmartError("token endpoint https://internal.example/secret answered 500")

    server.app.add_url_rule("/test-only/fails", view_func=fails)
    response = requests.get(f"{server.url}/test-only/fails", timeout=TIMEOUT)
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "The service failed; see its logs."}


def test_cors_is_applied_by_the_apps_own_hook(server):
    """flask-cors's extension would add its own after-request hook and replace Flask's exception
    handlers; the app registers one hook of its own instead."""
    hooks = server.app.after_request_funcs[None]
    modules = [hook.__module__ for hook in hooks]
    assert "cds_service.cors" in modules and all(m.startswith("cds_service.") for m in modules), modules
    assert type(server.app).handle_exception is Flask.handle_exception
    assert "handle_exception" not in vars(server.app) and "handle_user_exception" not in vars(server.app)
    origin = "https://sandbox.cds-hooks.org"
    sandbox = requests.get(f"{server.url}/cds-services", headers={"Origin": origin}, timeout=TIMEOUT)
    assert sandbox.headers["Access-Control-Allow-Origin"] == origin  # demo: any origin, echoed
    assert "X-Request-ID" in sandbox.headers["Access-Control-Expose-Headers"]
