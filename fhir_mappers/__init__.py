"""FHIR R4 resources → typed patient features with provenance."""
