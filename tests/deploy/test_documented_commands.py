"""Every ``python -m models …`` and ``python -m cds_service …`` command shown in a code block of
models/README.md and docs/integration.md runs as written.

Each document's commands run in their order (a later one may read what an earlier one wrote),
in a temporary directory of the document's own, with the interpreter running the tests (the
project's venv). Only these substitutions are made, because the commands run outside the
project directory:

- ``python`` or ``.venv/bin/python`` at the start of a command: this interpreter;
- the value of an input option (INPUT_OPTIONS: ``--data``, ``--artifact``, ``--base``,
  ``--terminology``) that names a file or directory of the project, relative to its root (such as
  ``models/examples/synthetic-cohort.csv``): the same path made absolute. Outputs stay relative
  and land in the temporary directory;
- ``cds_service`` commands get ``CDS_DATABASE_URL``: an SQLite file in the temporary directory,
  migrated before the first command, as the service does at its first start. PostgreSQL is
  covered by tests/deploy/test_cli.py (``migrate`` and ``audit-report`` on both databases).

Each command must exit 0 and leave what it promises (``promised_outputs``): the file named by
``reconstruct --out``, ``DIR/bundle.json`` for ``train`` (``--out DIR``, or the directory it
reports), ``DIR/report.md`` for ``report --out DIR``, or some text on stdout.

NOT_RUN names, with the tests that cover them, the commands that run until stopped; a
documented command in any other form (a line that does not start with the command, e.g. an
environment variable before it) fails the test rather than being skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("models/README.md", "docs/integration.md")  # the README links to these for its commands
INPUT_OPTIONS = ("--data", "--artifact", "--base", "--terminology")
NOT_RUN = {
    "python -m cds_service": "serves until stopped: tests/deploy/test_build_steps.py::"
    "test_build_steps_install_serves_discovery_and_health and the serve tests of "
    "tests/deploy/test_cli.py",
    "python -m cds_service serve": "the same as python -m cds_service",
}
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
MENTION = re.compile(r"(?:^|\s)(?:\S*/)?python3? -m (?:models|cds_service)\b")
COMMAND = re.compile(r"^(?:\.venv/bin/)?python -m (models|cds_service)\b")


def documented_commands(text: str) -> list[str]:
    """The command lines of the fenced code blocks that run ``python -m models|cds_service``."""
    commands = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if MENTION.search(line):
                commands.append(line.strip())
    return commands


def promised_outputs(argv: list[str], stdout: str) -> list[str]:
    """Paths (relative to the working directory) a command says it writes."""
    module, sub = argv[2], (argv[3] if len(argv) > 3 else "")
    out = argv[argv.index("--out") + 1] if "--out" in argv else None
    if module != "models":
        return []
    if sub == "reconstruct":
        return [out]
    if sub == "train":
        written = re.search(r"^wrote (\S+)", stdout, re.M)
        return [f"{out}/bundle.json"] + ([written.group(1)] if written else [])
    if sub == "report" and out:
        return [f"{out}/report.md"]
    return []


def _argv(command: str) -> list[str]:
    argv = shlex.split(command, comments=True)
    argv[0] = sys.executable
    for i, arg in enumerate(argv[:-1]):
        if arg in INPUT_OPTIONS and (ROOT / argv[i + 1]).exists():
            argv[i + 1] = str(ROOT / argv[i + 1])
    return argv


def run_documented(commands: list[str], workdir: Path) -> list[str]:
    """Run the commands in order in `workdir`; return what failed (empty: all ran as promised)."""
    env = {
        **os.environ,
        "CDS_DATABASE_URL": f"sqlite:///{workdir}/cds.sqlite3",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for name in ("CDS_MODEL_DIR", "CDS_TERMINOLOGY_PATH"):  # the documented defaults, not this shell's
        env.pop(name, None)
    migrate = subprocess.run(
        [sys.executable, "-m", "cds_service", "migrate"], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    failures = []
    for command in commands:
        if not COMMAND.match(command):
            failures.append(f"{command}\n  not in a form this test can run: start the line with the command")
            continue
        argv = _argv(command)
        name = " ".join(["python", "-m", *[a for a in argv[2:4] if not a.startswith("-")]])
        if name in NOT_RUN:
            continue
        result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            failures.append(f"{command}\n  exit {result.returncode}: {result.stderr.strip()[-2000:]}")
            continue
        missing = [p for p in promised_outputs(argv, result.stdout) if p and not (workdir / p).exists()]
        if missing:
            failures.append(f"{command}\n  wrote no {', '.join(missing)}")
        elif not result.stdout.strip():
            failures.append(f"{command}\n  printed nothing")
    return failures


@pytest.mark.slow  # trains and reports as the documents show
@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_runs_as_written(doc, tmp_path):
    commands = documented_commands((ROOT / doc).read_text(encoding="utf-8"))
    assert commands, f"no python -m command found in {doc}: has the extraction broken?"
    failures = run_documented(commands, tmp_path)
    assert not failures, f"{doc}: documented command(s) that do not run as written:\n" + "\n".join(failures)


def test_the_documents_show_the_model_commands_a_hospital_needs():
    shown = [c for doc in DOCS for c in documented_commands((ROOT / doc).read_text(encoding="utf-8"))]
    for needed in ("models train --data", "models report --data", "models report --artifact", "models reconstruct"):
        assert any(needed in c for c in shown), needed


def test_a_command_that_does_not_run_is_caught(tmp_path):
    doc = "\n".join(
        [
            "```bash",
            "python -m models report --artifact absent-model --out r/   # no such artifact",
            "python -m models report --bogus-option",
            "CDS_LOG_LEVEL=DEBUG python -m cds_service audit-report",
            "python -m cds_service   # serves until stopped: not run, by name",
            "```",
        ]
    )
    commands = documented_commands(doc)
    assert len(commands) == 4
    failures = run_documented(commands, tmp_path)
    assert len(failures) == 3
    assert "exit 2" in failures[0] and "model artifact not found" in failures[0]
    assert "unrecognized arguments" in failures[1]
    assert "not in a form this test can run" in failures[2]
