"""SMART on FHIR app (SMART App Launch 2, EHR and standalone launch, PKCE S256).

``init_app(app)`` registers the blueprint. The appContext a card's ``smart`` link carries is
built and read by ``cds_service.app_context`` (re-exported here), which the hook pipeline uses
without loading this package.
"""

from ..app_context import AppContext, InvalidAppContext, app_context, parse_app_context
from .views import bp, init_app

__all__ = ["AppContext", "InvalidAppContext", "app_context", "parse_app_context", "bp", "init_app"]
