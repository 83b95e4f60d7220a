"""Every knob of the service, in one pydantic settings object read from the environment.

Variables use the prefix ``CDS_`` (e.g. ``CDS_DATABASE_URL``), except ``HOST`` and ``PORT``, which
follow the platform convention. ``CDS_ENVIRONMENT=production`` switches the secure defaults on:
JWT required and ``fhirServer`` restricted to the allowlist.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cards.i18n import UnsupportedLocale, check_locale


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_", extra="ignore", frozen=True)

    environment: Literal["demo", "production"] = "demo"
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("HOST", "CDS_HOST"))
    port: int = Field(8080, ge=1, le=65535, validation_alias=AliasChoices("PORT", "CDS_PORT"))
    public_base_url: str | None = Field(
        None,
        description="External base URL (no trailing slash): JWT `aud` is checked against it and SMART "
        "redirects are built from it. Required in production; in demo the request's Host stands in.",
    )

    # Storage: SQLite file by default; a postgresql+psycopg:// URL in production.
    database_url: str = "sqlite:///var/cds-feedback.sqlite3"
    migrate_on_start: bool = Field(
        True, description="Apply schema migrations at start-up (False: run `python -m cds_service migrate`)."
    )
    audit_patient_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Secrets that key the audit log's patient digest (HMAC-SHA256; the patient id is never "
        'stored), as a JSON object key id → secret, e.g. `{"2026-01": "…"}`. Keep old key ids when rotating: '
        "rows keyed under them stay matchable. Production needs one of at least 32 bytes; demo, when empty, "
        "uses a fixed demo-only key that is no secret.",
    )
    audit_patient_key_id: str | None = Field(
        None,
        description="The key id in CDS_AUDIT_PATIENT_KEYS that keys new audit rows (may be omitted when it "
        "holds one key).",
    )

    # gunicorn (python -m cds_service): worker processes and threads per worker.
    workers: int = Field(2, ge=1, le=64)
    threads: int = Field(8, ge=1, le=256)
    # Slow clients (cds_service/waitress_worker.py): a request is read whole before a thread runs it.
    request_read_seconds: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Seconds a client has to send a whole request from its first byte; a connection "
        "idle this long between requests is closed too.",
    )
    max_connections_per_worker: int = Field(
        200,
        ge=8,
        le=10000,
        description="Open connections each worker holds (idle, being read or answered); further ones "
        "wait in the listen backlog.",
    )

    # Clinical configuration files (None = the copies shipped in the package).
    terminology_path: Path | None = None
    model_dir: Path | None = None
    lab_lookback_days: int = Field(30, ge=1, le=3650)
    labs_prefetch: Literal["codes", "category"] = Field(
        "codes",
        description="What the `labs` prefetch template asks for. `codes`: the terminology file's lab "
        "codes (a hospital's local codes once added there). `category`: every "
        "`category=laboratory` Observation, newest first, for a laboratory whose local codes are not "
        "in the file but whose names are (`labs.<key>.names`, e.g. 甲胎蛋白): more data per call, and a "
        "marker older than the newest 200 results (plus any pages the fetch budget allows) is reported "
        "missing.",
    )
    imaging_lookback_days: int = Field(90, ge=1, le=3650)

    # Fallback FHIR fetch when prefetch is missing.
    fetch_budget_seconds: float = Field(1.5, gt=0, le=30)
    fetch_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    fetch_max_pages: int = Field(5, ge=1, le=100)
    fetch_workers: int = Field(16, ge=1, le=128)
    fhir_server_allowlist: list[str] = Field(
        default_factory=list,
        description="Allowed fhirServer base URLs (prefix match). Empty = any server (demo only).",
    )

    ca_bundle: Path | None = Field(
        None,
        description="PEM file of the CA certificates trusted by every outbound HTTPS call (fhirServer, SMART, "
        "JWKS): e.g. the hospital's internal CA. It replaces the default trust store. None = the default store.",
    )

    # JWT bearer authentication of the calling EHR (CDS Hooks 2.0 §Trusting CDS Clients).
    jwt_required: bool | None = None  # None: on in production, off in demo
    discovery_requires_jwt: bool = Field(
        True,
        description="With JWT enforced, GET /cds-services needs one too (False: anonymous discovery, for EHR "
        "registration screens that fetch it without a token; it exposes only the service list).",
    )
    jwt_issuers: dict[str, str] = Field(default_factory=dict, description="Trusted `iss` → its JWKS URL.")
    jwt_jku_allowlist: list[str] = Field(default_factory=list)
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["ES384", "RS384"])
    jwt_leeway_seconds: int = Field(30, ge=0, le=300)
    jwt_max_age_seconds: int = Field(600, ge=1, description="Oldest accepted `iat`.")
    jwt_max_token_bytes: int = Field(16 * 1024, ge=512)

    # Cards.
    quiet_low_risk_card: bool = Field(
        True, description="Show an info card when neither marker is high (False: no card)."
    )
    alternatives_min_high_markers: int = Field(
        2, ge=1, le=2, description="High markers (AFP, ALT) needed before alternatives are suggested."
    )
    refill_cards: bool = Field(
        False,
        description="Show the first-line card when sorafenib is re-ordered without documented failure "
        "(a refill); no order is drafted on a refill.",
    )
    resistance_borderline_days: int = Field(
        14, ge=0, le=60, description="Progression this close to the 3-month boundary is shown as borderline."
    )
    smart_app_url: str | None = Field(
        None, description="SMART launch URL for card links (default: this service's /smart/launch)."
    )
    locale: str = Field(
        "en",
        description="Language of the cards and the SMART app when the clinician's is unknown: `en` or "
        "`zh_CN` (`zh-CN` accepted). A hook call follows the user's Practitioner.communication, the app the "
        "browser's Accept-Language, when either names a shipped language (docs/integration.md, Language).",
    )

    # SMART app (cds_service/smart): a public client using PKCE; see docs/sandbox.md.
    smart_client_id: str = "hcc-cds-smart-app"
    smart_scope: str = (
        "launch openid fhirUser patient/Patient.rs patient/Observation.rs patient/Condition.rs "
        "patient/Procedure.rs patient/DiagnosticReport.rs patient/MedicationRequest.rs "
        "patient/MedicationStatement.rs patient/MedicationAdministration.rs patient/Medication.rs "
        "patient/AdverseEvent.rs"
    )
    smart_iss_allowlist: list[str] = Field(
        default_factory=list,
        description="FHIR base URLs the app may be launched from (same rules as the fhirServer allowlist). "
        "Empty = the fhirServer allowlist (in demo, when that is empty too: any server but metadata addresses).",
    )
    smart_default_iss: str | None = Field(None, description="FHIR base for a standalone launch without `iss`.")
    smart_session_secret: SecretStr | None = Field(
        None, description="Signs the launch cookie; None = random per process (one worker only)."
    )
    smart_timeout_seconds: float = Field(5.0, gt=0, le=60)

    cors_origins: list[str] | None = Field(
        None,
        description="Browser origins allowed to call the service (e.g. a CDS Hooks sandbox). Unset: any "
        "origin in demo, none in production, where `*` is refused. /metrics is never exposed to browsers.",
    )
    max_request_bytes: int = Field(
        6 * 1024 * 1024,
        ge=1024,
        description="Largest accepted request body; larger ones get 413 before the body is read. 6 MiB (was 4) "
        "so that a prefetch of 10,000 resources (~4.0–4.6 MB: years of lab results) is assessed, not refused. "
        "Memory stays bounded: a body this size held ~6× its size once parsed and ~9× at the peak of parsing "
        "(measured 2026-12-03), so at most `threads` × ~55 MiB per worker while every thread parses one.",
    )
    log_level: str = "INFO"

    # Post-deployment monitoring (python -m cds_service monitor; docs/monitoring.md). Every threshold
    # below is a local policy choice, not evidence: the study published no monitoring limits.
    monitor_min_patients: int = Field(
        50,
        ge=1,
        description="Patients with a known outcome (or assessments, for drift) a figure needs before its alert "
        "is judged. Local policy: with 50 patients the 95% CI of a calibration intercept is already about ±0.55 "
        "log-odds; with fewer, a real shift and chance look alike.",
    )
    monitor_calibration_intercept_max: float = Field(
        0.5,
        gt=0,
        description="Alert when |calibration intercept| (log-odds, slope fixed at 1) exceeds this and its 95% CI "
        "excludes 0. Local policy: 0.5 means observed odds of primary resistance 1.65 times (or 0.61 times) "
        "the predicted, close to the effect of one marker (published odds ratios 1.75 and 1.77).",
    )
    monitor_calibration_slope_min: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Alert when the calibration slope is below this and its 95% CI excludes 1 (risks too "
        "extreme for this population). Local policy: half the development slope (0.92 cross-validated).",
    )
    monitor_auc_min: float = Field(
        0.55,
        gt=0.5,
        lt=1,
        description="Alert when the upper 95% bound of the AUC is below this: the markers no longer rank "
        "patients. Local policy: a little under the development AUC (0.60 optimism-corrected).",
    )
    monitor_survival_difference_max: float = Field(
        0.10,
        gt=0,
        lt=1,
        description="Alert when observed (Kaplan-Meier) second-line PFS or OS at 6 or 12 months differs from "
        "the mean prediction by more than this (absolute) and the prediction lies outside the KM 95% CI. "
        "Local policy: 10 points is a difference a clinician would tell a patient about.",
    )
    monitor_marker_share_difference_max: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Alert when the share of AFP > 400 ng/mL or ALT > 40 U/L differs from the training "
        "cohort's by more than this (absolute) and the training share lies outside the 95% CI. Local policy.",
    )
    monitor_psi_max: float = Field(
        0.25,
        gt=0,
        description="Alert when the population stability index of the (AFP > 400, ALT > 40) patterns against "
        "the training cohort exceeds this. Local policy, after the common credit-scoring rule of thumb "
        "(< 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift).",
    )

    @field_validator("locale")
    @classmethod
    def _locale_is_shipped(cls, value: str) -> str:
        try:
            return check_locale(value)
        except UnsupportedLocale as exc:
            raise ValueError(str(exc)) from None

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_is_a_pem_file(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ValueError(f"cannot read the CA bundle {path}: {exc.strerror or exc}") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError as exc:
            raise ValueError(f"{path} is not a valid PEM CA bundle ({exc.reason or exc})") from None
        return path

    @model_validator(mode="after")
    def _production_is_locked_down(self) -> Settings:
        # Every problem at once, one per line (python -m cds_service prints each on its own line).
        problems = []
        if self.environment == "production":
            if not self.fhir_server_allowlist:
                problems.append("production needs CDS_FHIR_SERVER_ALLOWLIST")
            if self.jwt_required is False:
                problems.append("production cannot disable JWT (CDS_JWT_REQUIRED=false)")
            if not (self.public_base_url or "").startswith("https://"):
                problems.append(
                    "production needs CDS_PUBLIC_BASE_URL, an https:// URL: the JWT audience and the SMART "
                    "redirect must not follow the Host header"
                )
            if "*" in (self.cors_origins or []):
                problems.append("production cannot allow every browser origin (CDS_CORS_ORIGINS contains *)")
            if not self.audit_patient_keys:
                problems.append("production needs CDS_AUDIT_PATIENT_KEYS (a secret keys the audit's patient digest)")
            problems += [
                f"CDS_AUDIT_PATIENT_KEYS: the secret of key id {key_id!r} is shorter than 32 bytes"
                for key_id, secret in self.audit_patient_keys.items()
                if len(secret.get_secret_value().encode()) < 32
            ]
        if self.audit_patient_keys and self.current_patient_key_id not in self.audit_patient_keys:
            problems.append("CDS_AUDIT_PATIENT_KEY_ID must name one of the key ids in CDS_AUDIT_PATIENT_KEYS")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def allowed_origins(self) -> list[str]:
        if self.cors_origins is not None:
            return self.cors_origins
        return [] if self.environment == "production" else ["*"]

    @property
    def current_patient_key_id(self) -> str | None:
        """The key id that keys new audit rows: the one named, or the only one given."""
        if self.audit_patient_key_id is None and len(self.audit_patient_keys) == 1:
            return next(iter(self.audit_patient_keys))
        return self.audit_patient_key_id

    @property
    def jwt_enforced(self) -> bool:
        if self.jwt_required is None:
            return self.environment == "production"
        return self.jwt_required
