"""CDS Hooks 2.0 service for HCC systemic therapy (Lei et al. 2025, DOI 10.1177/17588359241299678)."""

from .app import create_app

__all__ = ["create_app"]
