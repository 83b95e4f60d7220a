"""Command line: python -m models {reconstruct,train,report}.

- reconstruct --out FILE: the synthetic cohort reconstructed from the published aggregates.
- train [--data FILE|DIR] [--out DIR]: fit and write a versioned artifact; by default to a new
  ./model-<model version>/ directory, never over the shipped one (--replace-shipped does that).
- report: without --artifact/--data, the reproduction of the published figures; with either,
  the discrimination, calibration and Brier score of an artifact (default: shipped) on a cohort
  (default: the reconstruction).

Exit codes: 0 ok; 1 the reproduction report flagged a fitted figure outside its published range;
2 bad input (missing column, too few events, unreadable file, bad artifact), or the `train` extra
is not installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# What the `train` extra of pyproject.toml brings (import names); the service runs without them.
TRAINING_STACK = {"sklearn", "lifelines", "pandas", "scipy", "matplotlib"}


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
    from models.training import TrainingDataError, read_cohort, train_bundle, train_from_reconstruction

    started = time.perf_counter()
    if args.replace_shipped and args.out:
        print("error: give --out or --replace-shipped, not both", file=sys.stderr)
        return 2
    if args.out and Path(args.out).resolve() == SHIPPED_DIR.resolve() and not args.replace_shipped:
        print(
            f"error: {args.out} holds the shipped model; to overwrite it, use --replace-shipped instead of --out",
            file=sys.stderr,
        )
        return 2
    try:
        base = read_bundle(args.base) if args.recalibrate else None
        if args.data is None:
            if args.recalibrate:
                raise TrainingDataError("--recalibrate needs --data (the data to recalibrate on)")
            bundle = train_from_reconstruction(args.seed, progress=progress)
        else:
            cohort = read_cohort(args.data, terminology=args.terminology, progress=progress)
            bundle = train_bundle(
                cohort.frame,
                training_data=cohort.description,
                training_data_sha256=cohort.sha256,
                seed=None,
                base=base,
                progress=progress,
                source=cohort.source,
            )
    except (TrainingDataError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.replace_shipped:
        out = SHIPPED_DIR
    else:  # never the shipped package files: a new directory named after the model version
        out = Path(args.out) if args.out else Path(f"model-{bundle.metadata.model_version}")
    path = save_bundle(bundle, out)
    elapsed = time.perf_counter() - started
    print(f"wrote {path} (model version {bundle.metadata.model_version}; trained in {elapsed:.1f} s)")
    if not args.replace_shipped:
        print(f"evaluate it on a cohort it was not trained on: python -m models report --artifact {out} --data FILE")
        print(f"serve it: CDS_MODEL_DIR={out.resolve()}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from models._progress import progress
    from models.artifacts import ArtifactError
    from models.report import run_evaluation, run_report
    from models.training import TrainingDataError

    out = Path(args.out) if args.out else None
    if args.artifact is None and args.data is None:  # the reproduction of the published figures
        try:
            result = run_report(out_dir=out, seed=args.seed)
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
    try:
        evaluation = run_evaluation(
            artifact_path=Path(args.artifact) if args.artifact else None,
            data=Path(args.data) if args.data else None,
            out_dir=out,
            seed=args.seed,
            terminology=args.terminology,
            progress=progress,
        )
    except (TrainingDataError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(evaluation.markdown)
    if out is not None:
        print(f"wrote {out / 'report.md'}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reconstruct", help="write the synthetic cohort reconstructed from the published aggregates")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the documented default seed)")
    p.set_defaults(func=_cmd_reconstruct)

    p = sub.add_parser("train", help="fit the models and write a versioned JSON artifact")
    p.add_argument(
        "--data",
        default=None,
        help="CSV in the cohort column format, or a FHIR Bulk Data export (directory or .ndjson); "
        "default: the reconstructed cohort",
    )
    p.add_argument(
        "--out",
        default=None,
        help="artifact directory (default: a new ./model-<model version>/; never the shipped one)",
    )
    p.add_argument(
        "--replace-shipped",
        action="store_true",
        help="write the shipped models/artifacts/bundle.json instead (maintainers only)",
    )
    p.add_argument("--seed", type=int, default=None, help="reconstruction seed when --data is not given")
    p.add_argument(
        "--recalibrate",
        action="store_true",
        help="keep the coefficients of --base; refit only the logistic intercept and Cox baselines",
    )
    p.add_argument("--base", default=None, help="artifact to recalibrate (default: the shipped one)")
    p.add_argument(
        "--terminology", default=None, help="fhir_mappers terminology file for a FHIR export (default: the shipped one)"
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "report",
        help="without --artifact/--data: fitted vs published figures, exit 1 if any is "
        "flagged; with them: discrimination, calibration and Brier score of an "
        "artifact on a cohort",
    )
    p.add_argument(
        "--artifact", default=None, help="artifact directory or bundle.json to evaluate (default: the shipped one)"
    )
    p.add_argument(
        "--data",
        default=None,
        help="cohort to evaluate on: CSV or FHIR Bulk Data export, as for train (default: the reconstructed cohort)",
    )
    p.add_argument("--terminology", default=None, help="fhir_mappers terminology file for a FHIR export")
    p.add_argument("--out", default=None, help="directory for report.md and plots (default: print only)")
    p.add_argument("--seed", type=int, default=None, help="reconstruction seed (default: the default seed)")
    p.set_defaults(func=_cmd_report)

    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in TRAINING_STACK:
            raise
        print(
            f"error: python -m models {args.command} needs the training libraries, which a serving install "
            f"leaves out ({exc.name} is not installed): pip install 'hcc-sorafenib-cds[train]'",
            file=sys.stderr,
        )
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
