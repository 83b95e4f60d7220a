#!/usr/bin/env bash
# The service's install, in one place: the Dockerfile RUNs this, and tests/deploy runs it natively
# into a temporary prefix, so what the tests start is what the image holds.
#
#   deploy/build-steps.sh SOURCE_DIR PREFIX
#
# SOURCE_DIR: the project (the Docker build context: .dockerignore applies). PREFIX: a new venv
# that receives the package, its bundled model artifacts and terminology file, and the entrypoint
# PREFIX/bin/hcc-cds. Uses $PYTHON (default python3). Needs PyPI (or a mirror configured for pip).
set -euo pipefail
src="$(cd "$1" && pwd)"
prefix="$2"
python="${PYTHON:-python3}"

"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --disable-pip-version-check "$src"

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
echo "installed into $prefix" >&2
