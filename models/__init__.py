"""Statistics: the primary-resistance risk model and second-line survival models.

- reconstruct: synthetic cohort from the published aggregates of Lei et al. 2025 (not patient data)
- resistance / survival: the fitting classes (scikit-learn / lifelines shape)
- training, artifacts: fit a cohort table into a versioned, validated JSON artifact
- registry: `load_bundle()` and the predictions the service and cards call
- report, model_card: fitted vs published figures; TRIPOD+AI / HTI-1 model card
- fhir_import: training table from a FHIR Bulk Data export (via fhir_mappers)

Kept import-light: submodules are imported where they are used. See models/README.md.
"""
