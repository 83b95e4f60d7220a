"""SMART on FHIR app (SMART App Launch 2, EHR and standalone launch, PKCE S256).

``init_app(app)`` registers the blueprint; ``app_context(...)`` builds the string a card's
``smart`` link carries so the app shows the same assessment the card did.
"""

from .context import AppContext, InvalidAppContext, app_context, parse_app_context
from .views import bp, init_app

__all__ = ["AppContext", "InvalidAppContext", "app_context", "parse_app_context", "bp", "init_app"]
