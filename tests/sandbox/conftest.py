"""The sandbox as a person starts it: ``python -m cds_sandbox`` in its own session (a terminal's
process group), its URLs read from what it prints; Chromium from the e2e suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e.browser import artifacts, browser, page  # noqa: F401  (the e2e suite's Chromium fixtures)

ROOT = Path(__file__).resolve().parent.parent.parent
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
START_SECONDS = 120


@dataclass
class RunningSandbox:
    process: subprocess.Popen[str]
    urls: dict[str, str]
    output: list[str] = field(default_factory=list)

    @property
    def ehr_url(self) -> str:
        return self.urls["Demo EHR"]

    def session_processes(self) -> list[str]:
        """Every live process of the sandbox's session (what a terminal's Ctrl-C reaches)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # gone meanwhile
                continue
            fields = text.rsplit(")", 1)[1].split()
            if int(fields[3]) == self.process.pid and fields[0] != "Z":  # session id, not a zombie
                found.append(text.split(")", 1)[0] + ")")
        return found

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_sandbox", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = RunningSandbox(process, {})
    timer = threading.Timer(START_SECONDS, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.start()
    assert process.stdout is not None
    for line in process.stdout:
        running.output.append(line)
        name, _, rest = line.partition("  ")
        if rest.strip().startswith("http"):
            running.urls[name.strip()] = rest.split()[0]
        if line.startswith("Open the demo EHR"):
            break
    timer.cancel()
    if "Demo EHR" not in running.urls:
        process.wait()
        pytest.fail("the sandbox did not start:\n" + "".join(running.output[-60:]))
    threading.Thread(target=lambda: running.output.extend(process.stdout or ()), daemon=True).start()
    try:
        yield running
    finally:
        if process.poll() is None:  # a test failed before the Ctrl-C test: stop it as a user would
            try:
                running.interrupt()
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def axe():
    """check(page): the axe-core violations at WCAG 2.0/2.1 A and AA on the page as it is now."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} missing: run bash scripts/test-setup.d/node-fhir.sh (npm ci)")

    def check(target) -> list[dict]:
        target.evaluate(AXE.read_text())  # through the debugger: the SMART app's CSP blocks injected scripts
        result = target.evaluate(
            "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        )
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5], "help": v["help"]}
            for v in result["violations"]
        ]

    return check
