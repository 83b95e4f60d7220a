"""Property-based fuzzing of the running service from its own OpenAPI description (schemathesis,
built on hypothesis), against gunicorn as deployed.

    .venv/bin/python tests/hardening/fuzz.py --min-requests 10000   # the full run (~10 minutes)
    (tests/hardening/test_hardening_security.py runs it with a small count inside the test suite)

Every phase (examples, coverage, fuzzing, stateful) and every check but ``negative_data_rejection``:
the service is tolerant of what EHRs send by design (``extra="ignore"``, non-resource entries in
draftOrders skipped), so a schema-violating body may rightly get 200. On top of schemathesis's own
checks, every answer recorded in the HAR file is counted by status and every 4xx must be a JSON
error in the project's shape ``{"error": str, "message": str, ...}``; the service's own request
counter (``/metrics``) confirms the total. It leaves out scrapes of ``/metrics`` by design, and
counts one request a pass that the HAR file lacks: schemathesis's probe of its HTTP client
(``GET /schemathesis-probe…``, answered 404) before the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hardening_kit import gunicorn_service, metric_total  # noqa: E402

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@dataclass
class FuzzResult:
    exit_code: int
    output: str
    by_status: Counter = field(default_factory=Counter)
    bad_errors: list[str] = field(default_factory=list)  # 4xx answers not in the project's shape
    served: float = 0.0  # requests the service counted (metrics), fuzzing only
    scrapes: int = 0  # answers of /metrics in the HAR: the counter leaves them out

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)


def _error_shape_problem(entry: dict) -> str | None:
    content = entry["response"].get("content") or {}
    text = content.get("text") or ""
    if content.get("encoding") == "base64":
        import base64

        text = base64.b64decode(text).decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        return f"{entry['request']['method']} {entry['request']['url']}: not JSON: {text[:120]!r}"
    if not (isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str)):
        return f"{entry['request']['method']} {entry['request']['url']}: not the error shape: {text[:120]!r}"
    return None


def fuzz(url: str, max_examples: int, seed: int | None = None, workdir: Path | None = None) -> FuzzResult:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="cds-fuzz-"))
    har = workdir / "fuzz.har"
    before = metric_total(url, "cds_http_requests_total")
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "negative_data_rejection",
        "--max-examples",
        str(max_examples),
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--wait-for-schema",
        "30",
        "--no-color",
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    run = subprocess.run(command, capture_output=True, text=True, cwd=workdir)  # its cache dir goes there
    result = FuzzResult(run.returncode, run.stdout + run.stderr)
    result.served = metric_total(url, "cds_http_requests_total") - before - 1  # less the /openapi.json fetch
    for entry in json.loads(har.read_text())["log"]["entries"]:
        status = entry["response"]["status"]
        result.by_status[status] += 1
        result.scrapes += status == 200 and urlsplit(entry["request"]["url"]).path == "/metrics"
        if 400 <= status < 500 and (problem := _error_shape_problem(entry)):
            result.bad_errors.append(problem)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=150, help="per operation and phase, per pass")
    parser.add_argument("--min-requests", type=int, default=10_000, help="passes (new seeds) until this many")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first pass; then seed+1, ...")
    parser.add_argument("--url", help="fuzz a service already running there instead of starting one")
    args = parser.parse_args(argv)
    totals: Counter = Counter()
    bad: list[str] = []
    failed_passes = served = scrapes = 0
    with tempfile.TemporaryDirectory(prefix="cds-fuzz-") as tmp:
        with nullcontext(None) if args.url else gunicorn_service(Path(tmp), CDS_LOG_LEVEL="WARNING") as service:
            url = args.url or service.url
            seed = args.seed
            # Passes of bounded size (one huge run keeps its whole HAR log in memory).
            while sum(totals.values()) < args.min_requests:
                workdir = Path(tmp) / f"pass-{seed}"
                workdir.mkdir()
                result = fuzz(url, args.max_examples, seed, workdir)
                totals.update(result.by_status)
                bad += result.bad_errors
                served += result.served
                scrapes += result.scrapes
                failed_passes += result.exit_code != 0
                print(
                    f"pass seed={seed}: {result.total:,} requests, exit {result.exit_code}, "
                    f"5xx {result.server_errors}, 4xx not in the error shape {len(result.bad_errors)}",
                    flush=True,
                )
                if result.exit_code != 0:
                    print(result.output[-3000:])
                seed += 1
    server_errors = sum(n for status, n in totals.items() if status >= 500)
    print(
        f"requests: {sum(totals.values()):,}; by status: "
        + ", ".join(f"{status} × {n:,}" for status, n in sorted(totals.items()))
    )
    print(
        f"service counted {served:,.0f}: the HAR's less {scrapes} /metrics scrapes is "
        f"{sum(totals.values()) - scrapes:,}, and schemathesis probes once a pass outside its HAR"
    )
    print(f"5xx: {server_errors}; 4xx not in the error shape: {len(bad)}; passes failing a check: {failed_passes}")
    for problem in bad[:10]:
        print("  ", problem)
    return 0 if not failed_passes and not server_errors and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
