# HCC systemic-therapy CDS Hooks service. Build: deploy/build-image.sh (docker build -t hcc-cds .).
# The install itself is deploy/build-steps.sh, which the tests also run natively.
# Nothing secret is baked in: the database URL and JWT trust settings come from the environment
# (Kubernetes Secrets in deploy/k8s). Pin the base by digest in your registry if policy requires.
# BASE_IMAGE: any Debian 12 image with python3 (3.11) and its venv module; the default is the
# official slim image. Without a registry, deploy/build-debian-base.sh builds one (docs/integration.md §1).
# Dependencies come hash-checked from requirements.lock (serving only: no `train` extra, so no
# scikit-learn, lifelines, pandas, SciPy or matplotlib); the image holds its SBOM at
# /opt/hcc-cds/sbom.cdx.json (CycloneDX JSON).
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY . /src
RUN bash /src/deploy/build-steps.sh /src /opt/hcc-cds

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="hcc-sorafenib-cds" \
      org.opencontainers.image.description="CDS Hooks 2.0 service: sorafenib resistance risk and second-line survival estimates in HCC" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid cds --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cds \
    && mkdir -p /var/lib/hcc-cds \
    && chown cds:cds /var/lib/hcc-cds
COPY --from=build /opt/hcc-cds /opt/hcc-cds
ENV PATH=/opt/hcc-cds/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    CDS_DATABASE_URL=sqlite:////var/lib/hcc-cds/feedback.sqlite3 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/hcc-cds-metrics
WORKDIR /var/lib/hcc-cds
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/hcc-cds/bin/hcc-cds", "healthcheck"]
CMD ["/opt/hcc-cds/bin/hcc-cds", "serve"]
