"""Command line: python -m models {reconstruct,train,report}.

Exit codes: 0 ok; 1 the report flagged a fitted figure outside its published range;
2 bad input (missing column, too few events, unreadable file, bad artifact).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from models._progress import stage
    from models.reconstruct import DEFAULT_SEED, reconstruct_cohort, write_cohort_csv

    seed = DEFAULT_SEED if args.seed is None else args.seed
    with stage(f"reconstructing cohort (seed {seed})"):
        cohort = reconstruct_cohort(seed)
    write_cohort_csv(cohort, args.out)
    print(f"wrote {len(cohort)} patients to {args.out} (seed {seed}; synthetic, not patient data)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from models._progress import progress
    from models.artifacts import SHIPPED_DIR, ArtifactError, read_bundle, save_bundle
    from models.training import TrainingDataError, read_training_csv, train_bundle, train_from_reconstruction

    started = time.perf_counter()
    try:
        base = read_bundle(args.base) if args.recalibrate else None
        if args.data is None:
            if args.recalibrate:
                raise TrainingDataError("--recalibrate needs --data (the data to recalibrate on)")
            bundle = train_from_reconstruction(args.seed, progress=progress)
        else:
            data_path = Path(args.data)
            if data_path.is_dir() or data_path.suffix.lower() == ".ndjson":
                from models.fhir_import import cohort_from_bulk_export

                frame = cohort_from_bulk_export(data_path, terminology_path=args.terminology, progress=progress)
                # hash of the derived table (the export itself may be many files)
                sha = hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()
            else:
                frame, sha = read_training_csv(data_path)
            bundle = train_bundle(frame, training_data=f"file {data_path.name}", training_data_sha256=sha,
                                  seed=None, base=base, progress=progress)
    except (TrainingDataError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else SHIPPED_DIR
    path = save_bundle(bundle, out)
    elapsed = time.perf_counter() - started
    print(f"wrote {path} (model version {bundle.metadata.model_version}; trained in {elapsed:.1f} s)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from models.report import run_report
    from models.training import TrainingDataError

    try:
        result = run_report(out_dir=Path(args.out) if args.out else None, seed=args.seed)
    except TrainingDataError as exc:  # a seed whose cohort cannot be fitted (see models/README.md)
        print(f"error: seed {args.seed}: {exc}", file=sys.stderr)
        return 2
    print(result.markdown)
    if result.flags:
        print(f"\n{len(result.flags)} figure(s) flagged:", file=sys.stderr)
        for flag in result.flags:
            print(f"  - {flag}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reconstruct", help="write the synthetic cohort reconstructed from the published aggregates")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the documented default seed)")
    p.set_defaults(func=_cmd_reconstruct)

    p = sub.add_parser("train", help="fit the models and write a versioned JSON artifact")
    p.add_argument("--data", default=None,
                   help="CSV in the cohort column format, or a FHIR Bulk Data export (directory or .ndjson); "
                        "default: the reconstructed cohort")
    p.add_argument("--out", default=None, help="artifact directory (default: the shipped models/artifacts/)")
    p.add_argument("--seed", type=int, default=None, help="reconstruction seed when --data is not given")
    p.add_argument("--recalibrate", action="store_true",
                   help="keep the coefficients of --base; refit only the logistic intercept and Cox baselines")
    p.add_argument("--base", default=None, help="artifact to recalibrate (default: the shipped one)")
    p.add_argument("--terminology", default=None,
                   help="fhir_mappers terminology file for a FHIR export (default: the shipped one)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("report", help="fitted vs published figures (markdown + PNG); exit 1 if any is flagged")
    p.add_argument("--out", default=None, help="directory for report.md and plots (default: print only)")
    p.add_argument("--seed", type=int, default=None, help="reconstruction seed (default: the default seed)")
    p.set_defaults(func=_cmd_report)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
