"""Cold start, memory per worker and memory drift of the service as deployed (issue 23).

    .venv/bin/python bench/startup.py                          # ~5 starts, then 100,000 calls
    .venv/bin/python bench/startup.py --starts 3 --calls 20000 # quicker
    .venv/bin/python bench/run.py --only-startup               # the same, from the main benchmark

- cold start: from launching ``python -m cds_service`` (gunicorn, the settings' workers) to the
  first 200 answer to discovery, ``GET /cds-services``; the median of ``--starts`` starts after
  one unmeasured start (so the files are in the page cache, as on a node that pulled the image).
  Beside it, the CPU seconds on the start's critical path (the master's, then the slowest
  worker's): what the start takes when the cores are not shared with other jobs.
- RSS per worker: VmRSS of each gunicorn worker after the first 1,000 calls.
- drift: each worker's RSS after ``--calls`` calls against its RSS after 1,000 (each figure the
  first count wrk reached past it: it runs for a time, not a count). The calls are
  first-line and second-line hook calls (bench/scenarios.py) and discovery, in turn, from wrk
  (bench/mixed.lua), each hook call a new hookInstance.

Prints each figure beside its target. Needs wrk (bench/setup.sh).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import scenarios  # noqa: E402
from run import HOOK_PATH, cpu_seconds, service, worker_rss_mib, workers  # noqa: E402

COLD_START_TARGET_S = 2.0
RSS_TARGET_MIB = 150.0
DRIFT_TARGET = 0.10
WARM_CALLS = 1_000
MIXED = BENCH / "mixed.lua"
RUNS = itertools.count()  # numbers each wrk run, so that no two calls share a hookInstance


def cold_start(workdir: Path, label: str) -> tuple[float, float]:
    """(seconds from launch to the first answered discovery request, CPU seconds on the start's
    critical path: the gunicorn master's, then the slowest worker's, which boot in parallel).
    On a shared machine the wall time mostly measures the other jobs; the CPU figure does not."""
    started = time.monotonic()
    with service("WARNING", workdir, label=label) as (url, process, _healthy):
        assert requests.get(f"{url}/cds-services", timeout=10).status_code == 200
        seconds = time.monotonic() - started
        return seconds, cpu_seconds([str(process.pid)]) + max(cpu_seconds([pid]) for pid in workers(process.pid))


def mixed_calls(url: str, calls: int, workdir: Path, connections: int) -> tuple[int, int]:
    """At least ``calls`` mixed calls from one wrk thread, in runs sized by the rate seen so far
    (wrk runs for a time, not a count); (calls answered, non-2xx answers and socket errors)."""
    env = {**os.environ, "BENCH_PATH": HOOK_PATH}
    for name, body in (("BENCH_FIRST", scenarios.first_line()), ("BENCH_SECOND", scenarios.second_line())):
        path = workdir / f"{name.lower()}.json"
        path.write_text(json.dumps(body))
        env[name] = str(path)
    done = errors = 0
    seconds, rate = 0.0, 1.0
    while done < calls:
        env["BENCH_RUN"] = str(next(RUNS))
        duration = 2 if not seconds else max(2, min(60, round((calls - done) / rate) + 1))
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(MIXED), url]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        answered = re.search(r"(\d+) requests in", out)
        assert answered, out
        done += int(answered.group(1))
        errors += sum(
            int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout)[: ]+(\d+)", out)
        )
        seconds += duration
        rate = max(done / seconds, 1.0)
    return done, errors


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="measured cold starts (median reported)")
    parser.add_argument("--calls", type=int, default=100_000, help="mixed calls for the drift figure")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections for the mixed calls")
    args = parser.parse_args(argv)
    if args.calls <= WARM_CALLS:
        parser.error(f"--calls must be more than the {WARM_CALLS:,} warm-up calls")

    with tempfile.TemporaryDirectory(prefix="cds-startup-") as tmp:
        workdir = Path(tmp)
        cold_start(workdir, "cold-unmeasured")
        starts = [cold_start(workdir, f"cold-{i}") for i in range(args.starts)]
        median = statistics.median(wall for wall, _ in starts)
        cpu = statistics.median(cpu for _, cpu in starts)
        print(
            f"cold start to a served discovery request: median {median:.2f} s over {len(starts)} starts "
            f"({', '.join(f'{wall:.2f}' for wall, _ in starts)}; load average {os.getloadavg()[0]:.1f}); "
            f"CPU on its critical path (master + slowest worker): median {cpu:.2f} s; "
            f"target ≤ {COLD_START_TARGET_S:g} s: {verdict(median <= COLD_START_TARGET_S)}"
        )

        with service("WARNING", workdir, label="memory") as (url, process, _healthy):
            done, errors = mixed_calls(url, WARM_CALLS, workdir, args.connections)
            warm = worker_rss_mib(process.pid)
            started = time.monotonic()
            more, more_errors = mixed_calls(url, args.calls - done, workdir, args.connections)
            seconds = time.monotonic() - started
            loaded = worker_rss_mib(process.pid)
        print(
            f"RSS per worker after {done:,} calls: {', '.join(f'{m:.0f} MiB' for m in warm)}; "
            f"target ≤ {RSS_TARGET_MIB:g} MiB: {verdict(max(warm) <= RSS_TARGET_MIB)}"
        )
        drifts = [after / before - 1 for before, after in zip(warm, loaded, strict=True)]
        print(
            f"RSS per worker after {done + more:,} calls ({more:,} in {seconds:.0f} s, {more / seconds:.0f}/s; "
            f"non-2xx and socket errors: {errors + more_errors}): {', '.join(f'{m:.0f} MiB' for m in loaded)}; "
            f"drift {', '.join(f'{d:+.1%}' for d in drifts)}; target within ±{DRIFT_TARGET:.0%}: "
            f"{verdict(max(abs(d) for d in drifts) <= DRIFT_TARGET)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
