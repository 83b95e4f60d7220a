"""``python -m cds_service [serve|migrate|audit-report|monitor|healthcheck]`` (default: serve).

- ``serve``: migrate the store (with ``CDS_MIGRATE_ON_START=false``, only check that it is
  migrated), then run gunicorn on $HOST:$PORT with ``CDS_WORKERS`` processes, each serving with
  waitress and ``CDS_THREADS`` threads (see cds_service/waitress_worker.py).
- ``migrate``: bring the database schema to the newest revision and exit (idempotent).
- ``audit-report [--since DATE] [--until DATE] [--by-model-version] [--json]``: assessment counts,
  timings, missing data and feedback rates (cds_service/audit_report.py).
- ``monitor --fhir-server URL [--since DATE] [--until DATE] [--out DIR] [--patients FILE]
  [--pushgateway URL] [--token-file FILE]``: did the predictions come true? Calibration, survival,
  drift and card use, with alerts (cds_service/monitor; exit 1 when an alert trips, 3 when the run
  could not finish; docs/monitoring.md).
- ``healthcheck``: exit 0 if ``GET /healthz`` on the local server answers 200 (container probe).

A configuration error (a bad ``CDS_…`` value, an unreadable terminology file or model artifact, JWT
enforced without issuers) stops every command with exit status 2 and one line per problem on stderr,
before any worker forks: no traceback, and no value of any setting (secrets among them) is echoed.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import sys
import tempfile
import urllib.request
from datetime import date
from pathlib import Path

from .settings import Settings


def _serve(settings: Settings) -> int:
    from gunicorn.app.base import BaseApplication
    from sqlalchemy.exc import SQLAlchemyError

    from . import observability, waitress_worker
    from .store import SchemaOutdated, prepare_schema

    observability.configure_logging(settings.log_level)
    taken = _port_taken(settings.host, settings.port)
    if taken:
        logging.getLogger(__name__).error("cannot listen on %s:%s: %s", settings.host, settings.port, taken)
        return 1
    _prepare_multiprocess_metrics()
    settings = _one_session_secret_for_all_workers(settings)
    try:  # once, before the workers fork: they boot without the database (see load_worker_app)
        prepare_schema(settings.database_url, migrate_schema=settings.migrate_on_start)
    except SchemaOutdated as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).error("cannot prepare the database schema at start: %s", _database_reason(exc))
        return 1

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("threads", settings.threads)
            # Each worker serves with waitress, which reads a request whole before a thread runs
            # it: slow clients hold connections, not threads (issue 22).
            self.cfg.set(
                "worker_class", waitress_worker.worker_class(settings.request_read_seconds, settings.max_request_bytes)
            )
            self.cfg.set("worker_connections", settings.max_connections_per_worker)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("worker_tmp_dir", _worker_tmp_dir())
            # gunicorn >= 25.1 opens a control socket under $HOME: the image's user has none
            # (/nonexistent, read-only root), and nothing here uses it.
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("accesslog", None)  # the app writes its own JSON access line, without query strings
            # One listening socket per worker (SO_REUSEPORT): the kernel spreads connections evenly.
            # On a shared socket the first worker to wake took them all: with an EHR's few
            # keep-alive connections one worker served everything while the other idled (the
            # benchmark saw 1.0 of 2 cores used, and half the throughput, in some runs).
            self.cfg.set("reuse_port", True)
            self.cfg.set("logconfig_dict", _GUNICORN_LOGGING)
            self.cfg.set("child_exit", _child_exit)

        def load(self):
            return load_worker_app(settings)

    Server().run()
    return 0


def load_worker_app(settings: Settings):
    """The app of one gunicorn worker, its start-up objects frozen out of the garbage collector.

    The ~250,000 objects loaded at start (model artifact, terminology, schemas) live as long as
    the worker; a full collection walked all of them, holding the GIL (bench/README.md), and
    every thread of the worker stalled with it. Frozen, the collector skips them. With little
    long-lived data left unfrozen, a full collection then ran at every 10th middle-generation one,
    walking every in-flight prefetch: 1.4 a call, ~50 ms of CPU, at 10,000 resources. Every 100th
    instead: 0.2 a call, ~18 ms (bench/README.md, 2026-12-03). Request data is acyclic JSON, freed
    by reference counting; the rare cycles wait longer, not forever.

    The master has prepared the database schema: a worker boots without the database, so one that
    gunicorn replaces during a database outage starts (a failed boot would stop the whole server).
    """
    from .app import create_app

    app = create_app(settings, schema_prepared=True)
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
    return app


def _port_taken(host: str, port: int) -> str | None:
    """Why this address cannot be listened on, or None. The workers bind with SO_REUSEPORT, which
    would let a second instance on a taken port share its traffic silently: a plain bind first
    fails as any server would ("Address already in use")."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
            probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _one_session_secret_for_all_workers(settings: Settings) -> Settings:
    """Without CDS_SMART_SESSION_SECRET each worker would sign SMART launch cookies with its own
    random key, and a launch served by two workers would fail: draw one here, before forking."""
    if settings.smart_session_secret is not None or settings.workers == 1:
        return settings
    from pydantic import SecretStr

    logging.getLogger(__name__).warning(
        "CDS_SMART_SESSION_SECRET is not set: using a random one for this pod's workers "
        "(set it in production so that every replica shares it)"
    )
    return settings.model_copy(update={"smart_session_secret": SecretStr(secrets.token_urlsafe(48))})


def _prepare_multiprocess_metrics() -> None:
    """Every worker writes its metrics to files in one directory; stale files from a previous run go."""
    if "prometheus_client" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logging.getLogger(__name__).warning("prometheus_client imported before set-up: metrics are per worker")
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cds-metrics-")


def _child_exit(_server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _worker_tmp_dir() -> str:
    # Heartbeat files: /dev/shm keeps them off a (possibly read-only or slow) disk when it exists.
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class AddresslessListeningLine(logging.Filter):
    """Drops the gunicorn master's "Listening at:  (pid)": with a socket per worker the master binds
    nothing, so its line names no address; the worker class logs the real one just after."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Listening at: %s (%s)" and isinstance(record.args, tuple) and not record.args[0])


_GUNICORN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cds_service.observability.JsonFormatter"}},
    "filters": {"addressless_listening": {"()": "cds_service.__main__.AddresslessListeningLine"}},
    "handlers": {"json": {"class": "cds_service.observability.JsonHandler", "formatter": "json"}},
    "root": {"level": "INFO", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True, "filters": ["addressless_listening"]},
        # The app logs each request itself (JSON, with request id, without the query string).
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        # "Task queue depth is N" whenever a request waits for a thread: routine under load.
        "waitress.queue": {"level": "ERROR", "handlers": [], "propagate": True},
    },
}


def _migrate(settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from .store import migrate

    try:
        print(f"database schema at revision {migrate(settings.database_url)}")
    except SQLAlchemyError as exc:
        print(f"migrate: cannot migrate the database: {_database_reason(exc)}", file=sys.stderr)
        return 1
    return 0


def _database_reason(exc) -> str:
    """The driver's own words for a SQLAlchemy error: no URL (with its password), no SQL."""
    return str(exc.orig if getattr(exc, "orig", None) is not None else exc).strip()


def load_settings() -> tuple[Settings | None, list[str]]:
    """The settings, or one message per problem naming its environment variable. A pydantic error
    carries the offending input (for a cross-field check, every setting, the SMART session secret
    included): it is never printed, only where and what."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            message = error["msg"].removeprefix("Value error, ")
            field = str(error["loc"][0]) if error["loc"] else ""
            where = f"{_env_var(field)}: " if field else ""
            problems += [f"{where}{line}" for line in message.splitlines()]
        return None, problems
    except SettingsError as exc:  # a JSON setting (list, dict) that is not JSON; the message names no value
        field = str(exc).partition('"')[2].partition('"')[0]
        where = _env_var(field) if field else "a setting"
        return None, [f"{where}: is not valid JSON (lists and mappings are written as JSON)"]


def _env_var(field: str) -> str:
    """``CDS_PORT`` for ``port``; an error on an aliased field is located by its alias (``PORT``)."""
    if field not in Settings.model_fields:
        return field.upper()
    choices = getattr(Settings.model_fields[field].validation_alias, "choices", None)
    return str(choices[0]) if choices else f"CDS_{field.upper()}"


def serving_problems(settings: Settings) -> list[str]:
    """What a worker would fail on at boot, found once before forking: gunicorn would show it only in a
    worker's traceback before 'Worker failed to boot'. Loads the files as the worker does."""
    from fhir_mappers.errors import TerminologyError
    from fhir_mappers.terminology import load_terminology
    from models.artifacts import ArtifactError
    from models.registry import load_bundle

    from .auth import JwtVerifier

    problems = []
    try:
        load_terminology(settings.terminology_path)
    except (TerminologyError, OSError, ValueError) as exc:
        problems.append(f"CDS_TERMINOLOGY_PATH: {exc}")
    try:
        load_bundle(settings.model_dir)
    except (ArtifactError, OSError, ValueError) as exc:
        problems.append(f"CDS_MODEL_DIR: {_first_line(exc)}")
    if settings.jwt_enforced:
        try:
            JwtVerifier(settings)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _healthcheck(settings: Settings) -> int:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.port}/healthz", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cds_service", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service with gunicorn (default)")
    commands.add_parser("migrate", help="bring the database schema to the newest revision")
    report = commands.add_parser("audit-report", help="assessment counts, timings and feedback rates")
    report.add_argument("--since", type=date.fromisoformat, help="first day (YYYY-MM-DD, UTC) to include")
    report.add_argument("--until", type=date.fromisoformat, help="last day (YYYY-MM-DD, UTC) to include")
    report.add_argument("--by-model-version", action="store_true", help="the figures of each model version too")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    monitor = commands.add_parser("monitor", help="outcomes against predictions, drift and alerts (a batch job)")
    monitor.add_argument("--fhir-server", required=True, help="FHIR base URL, as the EHR sends it in fhirServer")
    monitor.add_argument("--since", type=date.fromisoformat, help="first day (YYYY-MM-DD, UTC) of assessments")
    monitor.add_argument("--until", type=date.fromisoformat, help="last day (YYYY-MM-DD, UTC) of assessments")
    monitor.add_argument("--out", type=Path, default=Path("monitor-report"), help="directory for the reports")
    monitor.add_argument("--patients", type=Path, help="candidate patient ids, one a line (default: FHIR search)")
    monitor.add_argument("--pushgateway", help="Prometheus Pushgateway URL to push the alert gauges to")
    monitor.add_argument("--token-file", type=Path, help="file holding a bearer token for the FHIR server")
    commands.add_parser("healthcheck", help="exit 0 if the local server answers /healthz")
    args = parser.parse_args(argv)

    settings, problems = load_settings()
    if settings is not None and args.command in (None, "serve"):
        problems = serving_problems(settings)
    if settings is None or problems:
        for problem in problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "audit-report":
        from . import audit_report

        return audit_report.run(settings, args.since, args.until, args.by_model_version, args.json)
    if args.command == "monitor":
        from .monitor import MonitorOptions, run

        options = {key: value for key, value in vars(args).items() if key != "command"}
        return run(settings, MonitorOptions(**options))
    if args.command == "healthcheck":
        return _healthcheck(settings)
    return _serve(settings)


if __name__ == "__main__":
    sys.exit(main())
