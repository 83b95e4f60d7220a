"""The shipped example cohort, models/examples/synthetic-cohort.csv: synthetic, labelled so in
the file itself, and exactly the reconstruction it says it is.

Regenerate it with ``.venv/bin/python tests/models/test_example_cohort.py``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "models" / "examples" / "synthetic-cohort.csv"
SEED = 7  # not the default seed 0, so the shipped model meets patients it was not fitted to
HEADER = f"""\
# SYNTHETIC DATA - NOT PATIENTS. An example of the cohort format read by python -m models train and report.
# It is the cohort reconstructed from the published aggregates of Lei et al. 2025 (DOI 10.1177/17588359241299678)
# with seed {SEED} (python -m models reconstruct --out FILE --seed {SEED}). Columns: models/README.md, Cohort columns.
"""


def expected_text() -> str:
    from models.reconstruct import reconstruct_cohort, write_cohort_csv

    buffer = io.StringIO()
    write_cohort_csv(reconstruct_cohort(SEED), buffer)
    return HEADER + buffer.getvalue()


def test_example_cohort_is_the_labelled_reconstruction():
    assert EXAMPLE.read_text(encoding="utf-8") == expected_text()


def test_example_cohort_reads_as_training_data():
    from models.training import read_cohort, validate_training_frame

    cohort = read_cohort(EXAMPLE)
    assert cohort.frame.index[0] == 5  # three comment lines, then the header on line 4
    assert len(validate_training_frame(cohort.frame, source=cohort.source)) == 424


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    EXAMPLE.parent.mkdir(exist_ok=True)
    EXAMPLE.write_text(expected_text(), encoding="utf-8")
    print(f"wrote {EXAMPLE.relative_to(ROOT)}")
