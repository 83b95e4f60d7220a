"""Statistics: the primary-resistance risk model and second-line survival models.

Kept import-light: submodules are imported where they are used.
"""
