"""Long patient histories (issue 23): a first-line hook call whose prefetch holds 30, 300, 3,000
and 10,000 resources (``scenarios.long_history``), against the service as deployed.

    .venv/bin/python bench/run.py --only long-history --rounds 2      # ~4 minutes
    .venv/bin/python bench/run.py --only long-history --profile       # + py-spy of a worker, GC share
    .venv/bin/python bench/run.py --only long-history --gc-freeze-off # + the same without gc.freeze()

For each size, in the same run: the floor (orjson-parse the same body and visit every resource
once, in this process), the time per call one call at a time, and throughput at saturation
alternated with bare Flask (bench/bare_app.py on the same server) sent the same request. Each
figure is printed beside its target. ``--profile`` samples one worker with py-spy (native frames,
so the cyclic garbage collector shows) while the load runs at 3,000 and 10,000 resources.
``--gc-freeze-off`` measures the service again with ``gc.freeze()`` after start-up disabled (a
``sitecustomize`` on the service's PYTHONPATH), to weigh what the freeze is worth.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import requests
import run
import scenarios

from fhir_mappers.resources import iter_resources

SIZES = (30, 300, 3_000, 10_000)
PROFILED = (3_000, 10_000)
TARGET_GROWTH = 10.0  # 3,000 vs 300 resources: time per call at most 10×
TARGET_FLOOR = 3.0  # at 3,000 resources: at most 3× the floor
TARGET_BARE = 0.3  # throughput at least 0.3× bare Flask sent the same request
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))  # bench/setup.sh: in the venv
_NO_FREEZE = "import gc\n\ngc.freeze = lambda: None  # bench/long_history.py --gc-freeze-off\n"


def floor_ms(body: bytes, runs: int) -> float:
    """CPU time of the fastest of ``runs`` orjson parses of the body, each followed by one visit of
    every resource:
    in this process with its start-up objects frozen, as a worker's are (gc.freeze), so that the
    floor pays the garbage collector's young collections as a worker does, no more."""
    gc.collect()
    gc.freeze()
    best = float("inf")
    for _ in range(runs):
        started = time.thread_time()
        count = sum(1 for _ in iter_resources(orjson.loads(body)["prefetch"]))
        best = min(best, time.thread_time() - started)
    assert count > 0
    return best * 1000


def check_answer(url: str, body: dict[str, Any]) -> int:
    """The call is assessed (cards, not 413 or 500) before it is loaded; returns the body's size."""
    data = orjson.dumps(body)
    response = requests.post(url + run.HOOK_PATH, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    cards = response.json()["cards"]
    assert cards and cards[0]["indicator"] == "warning", cards
    return len(data)


def py_spy(pid: str, seconds: int, out: Path) -> Counter[str]:
    """Samples of one worker's request threads (stacks under ``Flask.__call__``; idle threads and
    the server's own loop left out), by innermost Python function; a sample inside the cyclic
    garbage collector counts as ``gc``, whatever allocation set it off."""
    subprocess.run(
        [PY_SPY, "record", "--pid", pid, "--duration", str(seconds), "--native", "--rate", "100"]
        + ["--format", "raw", "--output", str(out)],
        check=True,
        capture_output=True,
    )
    samples: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith("Flask.__call__ ") for f in frames):
            continue
        if any(f.startswith("gc_collect") for f in frames):
            samples["gc (cyclic collector)"] += int(count)
            continue
        python = [f for f in frames if ".py:" in f]
        samples[_function(python[-1]) if python else frames[-1]] += int(count)
    return samples


def _function(frame: str) -> str:
    """'_labels (/work/main/fhir_mappers/conditions.py:158)' -> '_labels (conditions.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})"


def measure_sizes(args, workdir: Path, bare: run.Server, extra_env: dict[str, str] | None, label: str) -> list[dict]:
    rows = []
    with run.service("WARNING", workdir, extra_env=extra_env, label=label) as (url, process, _):
        pids = run.workers(process.pid)
        for size in SIZES:
            body = scenarios.long_history(size)
            raw = orjson.dumps(body)
            size_bytes = check_answer(url, body)
            requests.post(bare.url + "/bare", data=raw, headers={"Content-Type": "application/json"}, timeout=60)
            floor = floor_ms(raw, 30 if size < 3_000 else 10)
            measured = run.measure(
                f"first line, {size:,} resources",
                url,
                pids,
                run.HOOK_PATH,
                lambda body=body: body,
                bare,
                _load_for(size, args),
                workdir,
                (TARGET_BARE, None),
            )
            profile = None
            if args.profile and size in PROFILED:
                profile = _profile(args, url, pids[0], body, workdir, size)
            rows.append(
                {
                    "size": size,
                    "bytes": size_bytes,
                    "floor": floor,
                    "per_call": 1000 / measured.paced.rps,
                    "cpu": measured.saturated.cpu_ms,
                    "connections": _load_for(size, args).connections,
                    "measured": measured,
                    "profile": profile,
                }
            )
    return rows


def _load_for(size: int, args: argparse.Namespace) -> argparse.Namespace:
    """The load for one size: from 3,000 resources a call takes 0.1–0.5 s, so 16 connections of
    4.5 MB bodies would answer nothing within a 3 s run; 4 (two per worker) keep both cores busy."""
    if size < 3_000:
        return args
    return argparse.Namespace(
        **{**vars(args), "connections": min(args.connections, 4), "duration": max(args.duration, 6)}
    )


def _profile(args, url: str, pid: str, body: dict[str, Any], workdir: Path, size: int) -> Counter[str]:
    """py-spy on one worker while wrk keeps the service saturated with this call."""
    body_file = workdir / f"profile-{size}.json"
    body_file.write_bytes(orjson.dumps(body))
    seconds = args.duration + 2
    load = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{_load_for(size, args).connections}",
            f"-d{seconds + 2}s",
            "-s",
            str(run.BENCH / "request.lua"),
            url,
        ],
        env={**os.environ, "BENCH_BODY": str(body_file), "BENCH_PATH": run.HOOK_PATH},
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)  # the load has started
        return py_spy(pid, seconds, workdir / f"profile-{size}.txt")
    finally:
        load.wait()


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """The targets are judged on CPU per call (the workers' user + system time per request at
    saturation, against the floor's CPU time): on this shared VM the wall time of one call is
    mostly waiting for a core, and moves 2× between neighbouring runs."""
    by_size = {row["size"]: row for row in rows}
    print(f"## {title}\n")
    print(
        "| resources | body | floor CPU ms (parse + visit) | worker CPU ms per call | × floor "
        "| ms per call, one at a time (p99) | connections | req/s at saturation | bare Flask req/s, same request "
        "| × bare (rounds) | target |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        m = row["measured"]
        print(
            f"| {row['size']:,} | {row['bytes'] / 1e6:.2f} MB | {row['floor']:.2f} | {row['cpu']:.2f} | "
            f"{row['cpu'] / row['floor']:.1f}× | {row['per_call']:.1f} ({m.paced.p99_ms:.0f}) | {row['connections']} | "
            f"{m.saturated.rps:,.1f} | {m.baseline.rps:,.1f} | {run.ratio_text(m.ratios)} | "
            f"{'met' if m.ratio >= TARGET_BARE else 'MISSED'} (≥ {TARGET_BARE}×) |"
        )
    growth = by_size[3_000]["cpu"] / by_size[300]["cpu"]
    over_floor = by_size[3_000]["cpu"] / by_size[3_000]["floor"]
    print(
        f"\n- 3,000 vs 300 resources, CPU per call: {growth:.1f}× "
        f"({'met' if growth <= TARGET_GROWTH else 'MISSED'}: ≤ {TARGET_GROWTH:g}×); wall time one at a time "
        f"{by_size[3_000]['per_call'] / by_size[300]['per_call']:.1f}×"
    )
    print(
        f"- 3,000 resources, CPU per call vs the floor: {over_floor:.1f}× "
        f"({'met' if over_floor <= TARGET_FLOOR else 'MISSED'}: ≤ {TARGET_FLOOR:g}×)"
    )
    big = by_size[10_000]
    print(
        f"- 10,000 resources ({big['bytes'] / 1e6:.2f} MB): assessed, cards answered (met: not refused); "
        f"{big['cpu']:.0f} ms CPU, {big['per_call']:.0f} ms wall per call, "
        f"{big['measured'].paced.errors + big['measured'].saturated.errors} errors"
    )
    for row in rows:
        if row["profile"]:
            total = sum(row["profile"].values())
            top = ", ".join(f"{name} {n / total:.0%}" for name, n in row["profile"].most_common(8))
            print(f"- py-spy, request threads of one worker at {row['size']:,} resources ({total:,} samples): {top}")
    print()


def main(args) -> int:
    if args.profile and not Path(PY_SPY).exists():
        print("py-spy not found: run bench/setup.sh", file=sys.stderr)
        return 2
    settings = run.Settings()
    with tempfile.TemporaryDirectory(prefix="cds-bench-long-") as tmp, run.bare_flask(settings) as bare:
        workdir = Path(tmp)
        print_rows(
            "First line with long histories (CDS_LOG_LEVEL=WARNING)",
            measure_sizes(args, workdir, bare, None, "long-history"),
        )
        if args.gc_freeze_off:
            site = workdir / "no-freeze"
            site.mkdir()
            (site / "sitecustomize.py").write_text(_NO_FREEZE)
            print_rows(
                "The same without gc.freeze() after start-up",
                measure_sizes(args, workdir, bare, {"PYTHONPATH": str(site)}, "no-freeze"),
            )
    return 0


if __name__ == "__main__":
    sys.exit(run.main(["--only", "long-history", *sys.argv[1:]]))
