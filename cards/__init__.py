"""Assessments → CDS Hooks 2.0 cards, suggestions and links."""
