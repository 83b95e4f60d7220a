"""CDS Hooks 2.0 service for HCC systemic therapy (Lei et al. 2025, DOI 10.1177/17588359241299678)."""

__all__ = ["create_app"]


def __getattr__(name: str):
    # Lazy: the image's HEALTHCHECK (hcc-cds healthcheck, 5 s timeout) must not import the model
    # stack (SciPy, scikit-learn, pandas) just to ask /healthz.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
