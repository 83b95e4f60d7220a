#!/usr/bin/env bash
# The service's install, in one place: the Dockerfile RUNs this, and tests/deploy runs it natively
# into a temporary prefix, so what the tests start is what the image holds.
#
#   deploy/build-steps.sh SOURCE_DIR PREFIX
#
# SOURCE_DIR: the project (the Docker build context: .dockerignore applies). PREFIX: a new venv
# that receives the package, its bundled model artifacts and terminology file, and the entrypoint
# PREFIX/bin/hcc-cds. Uses $PYTHON (default python3). Needs PyPI (or a mirror configured for pip).
#
# Dependencies are exactly requirements.lock (hash-checked), installed by the pip and setuptools of
# requirements-build.lock; the project goes in without resolving anything more. What only installs or tests (pip, setuptools, packages' own test suites) is
# removed, and PREFIX/sbom.cdx.json records every Python package left (CycloneDX 1.6 JSON).
set -euo pipefail
src="$(cd "$1" && pwd)"
prefix="$2"
python="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$src/requirements-build.lock"
"$prefix/bin/python" -m pip install --quiet --require-hashes --no-deps --no-build-isolation -r "$src/requirements.lock"
"$prefix/bin/python" -m pip install --quiet --no-deps --no-build-isolation --no-index "$src"
"$prefix/bin/python" -m pip check

# Not needed to run: the installers and the packages' own test suites (~140 MB).
"$prefix/bin/python" -m pip uninstall --quiet --yes setuptools
"$prefix/bin/python" -m pip uninstall --quiet --yes pip
find "$prefix"/lib/python3*/site-packages -mindepth 2 -type d -name tests -prune -exec rm -rf {} +

# Smoke check at build time: the entrypoint imports, the app builds with its bundled artifacts,
# and the migrations apply, all from the installed copy (run outside the source tree).
cd /
"$prefix/bin/hcc-cds" --help >/dev/null
"$prefix/bin/python" - <<'PY'
from cds_service import create_app
from cds_service.settings import Settings

app = create_app(Settings(database_url="sqlite://"))
assert app.test_client().get("/cds-services").status_code == 200
PY

# The SBOM, by a generator from its own hash-pinned lock, in a throwaway venv (not shipped).
tool="$(mktemp -d)"
"$python" -m venv "$tool"
"$tool/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$src/requirements-build.lock"
"$tool/bin/python" -m pip install --quiet --require-hashes --no-deps --no-build-isolation -r "$src/deploy/sbom-tool.lock"
"$tool/bin/cyclonedx-py" environment --output-format JSON --spec-version 1.6 --output-reproducible \
  --pyproject "$src/pyproject.toml" --mc-type application --output-file "$prefix/sbom.cdx.json" \
  "$prefix/bin/python"
rm -rf "$tool"
echo "installed into $prefix (SBOM: $prefix/sbom.cdx.json)" >&2
