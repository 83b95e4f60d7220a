"""Child-Pugh and ALBI from the record, so that a class C liver is seen when nobody coded it.

Child-Pugh (Pugh et al., Br J Surg 1973; as used by AASLD, EASL and BCLC): 1-3 points each for
total bilirubin (< 2, 2-3, > 3 mg/dL), albumin (> 3.5, 2.8-3.5, < 2.8 g/dL), INR (< 1.7,
1.7-2.3, > 2.3), ascites (none, mild, moderate-severe) and hepatic encephalopathy (none, grade
1-2, grade 3-4); class A 5-6, B 7-9, C 10-15 points. A missing input counts as every score it
could have, so the result is the range of totals the known inputs allow. A coded ascites or
encephalopathy Condition says "present" without its grade: 2-3 points. An absent code is not
an absence of ascites: 1-3 points.

ALBI (Johnson et al., J Clin Oncol 2015): log10(bilirubin umol/L) x 0.66 + albumin g/L x -0.085;
grade 1 <= -2.60 < grade 2 <= -1.39 < grade 3. Shown for information; no rule uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from fhir_mappers.features import Feature, LabValue, PatientFeatures

ChildPughLetter = Literal["A", "B", "C"]
BILIRUBIN_UMOL_PER_MG_DL = 17.1  # the unit definition fhir_mappers.units converts with

# (upper bound of 1 point, upper bound of 2 points, whether the bound itself belongs to the lower
# score); in model units. Bilirubin 2 and 3 mg/dL, INR 1.7 and 2.3 belong to 2 points; albumin
# 3.5 and 2.8 g/dL too (2.8-3.5 scores 2).
_BILIRUBIN = (2 * BILIRUBIN_UMOL_PER_MG_DL, 3 * BILIRUBIN_UMOL_PER_MG_DL)  # umol/L
_ALBUMIN = (35.0, 28.0)  # g/L, falling: > 35 scores 1, < 28 scores 3
_INR = (1.7, 2.3)
ALBI_GRADE_BOUNDS = (-2.60, -1.39)


class ChildPughItem(BaseModel):
    name: str
    low: int
    high: int
    basis: str  # the value it was scored from, or why it is unknown


class ChildPugh(BaseModel):
    points_low: int
    points_high: int
    items: list[ChildPughItem]
    coded_class: ChildPughLetter | None = None  # as written in the record, if it was

    @property
    def class_low(self) -> ChildPughLetter:
        return letter(self.points_low)

    @property
    def class_high(self) -> ChildPughLetter:
        return letter(self.points_high)

    @property
    def worst_known_class(self) -> ChildPughLetter:
        """The worse of the coded class and the class the scored minimum already reaches."""
        classes = [self.class_low] + ([self.coded_class] if self.coded_class else [])
        return max(classes)

    @property
    def unknown_items(self) -> list[str]:
        return [item.name for item in self.items if item.low != item.high]

    @property
    def could_be_c(self) -> bool:
        """C cannot be ruled out: the range reaches 10 and no coded class settles it."""
        return self.coded_class is None and self.points_high >= 10 and self.worst_known_class != "C"

    def describe(self) -> str:
        if self.points_low == self.points_high:
            scored = f"{self.points_low} points (class {self.class_low})"
        else:
            scored = f"{self.points_low}–{self.points_high} points (class {self.class_low}–{self.class_high})"
        coded = f"; recorded class {self.coded_class}" if self.coded_class else ""
        unknown = f"; not known: {', '.join(self.unknown_items)}" if self.unknown_items else ""
        return f"Child-Pugh from the record: {scored}{coded}{unknown}"


class Albi(BaseModel):
    score: float
    grade: Literal[1, 2, 3]


def letter(points: int) -> ChildPughLetter:
    return "A" if points <= 6 else "B" if points <= 9 else "C"


def _interval(lab: LabValue) -> tuple[float, float]:
    """Where the true value lies, honouring a comparator ('<5' is anywhere in 0-5)."""
    if lab.comparator in ("<", "<="):
        return 0.0, lab.value
    if lab.comparator in (">", ">="):
        return lab.value, math.inf
    return lab.value, lab.value


def _rising(value: float, bounds: tuple[float, float]) -> int:
    return 1 if value < bounds[0] else 2 if value <= bounds[1] else 3


def _falling(value: float, bounds: tuple[float, float]) -> int:
    return 1 if value > bounds[0] else 2 if value >= bounds[1] else 3


def _lab_item(
    name: str,
    feature: Feature[LabValue],
    score: Callable[[float, tuple[float, float]], int],
    bounds: tuple[float, float],
) -> ChildPughItem:
    if feature.value is None:
        return ChildPughItem(name=name, low=1, high=3, basis=f"unknown ({feature.note or 'not found'})")
    lab: LabValue = feature.value
    low_value, high_value = _interval(lab)
    points = sorted({score(low_value, bounds), score(high_value, bounds)})
    shown = f"{lab.comparator or ''}{lab.value:g} {lab.unit}"
    return ChildPughItem(name=name, low=points[0], high=points[-1], basis=shown)


def _condition_item(name: str, features: PatientFeatures, key: str) -> ChildPughItem:
    found = features.findings_of(key, active_only=True)
    if found:
        prov = found[0].provenance
        return ChildPughItem(
            name=name, low=2, high=3, basis=f"present, grade not coded ({prov.resource_type}/{prov.resource_id})"
        )
    return ChildPughItem(name=name, low=1, high=3, basis="not recorded")


def child_pugh(features: PatientFeatures) -> ChildPugh:
    items = [
        _lab_item("bilirubin", features.bilirubin, _rising, _BILIRUBIN),
        _lab_item("albumin", features.albumin, _falling, _ALBUMIN),
        _lab_item("INR", features.inr, _rising, _INR),
        _condition_item("ascites", features, "ascites"),
        _condition_item("encephalopathy", features, "hepatic_encephalopathy"),
    ]
    return ChildPugh(
        points_low=sum(i.low for i in items),
        points_high=sum(i.high for i in items),
        items=items,
        coded_class=features.child_pugh_class.value,
    )


def albi(features: PatientFeatures) -> Albi | None:
    """ALBI from exact bilirubin and albumin values (None when either is missing or a bound)."""
    bilirubin, albumin = features.bilirubin.value, features.albumin.value
    if bilirubin is None or albumin is None or bilirubin.comparator or albumin.comparator or bilirubin.value <= 0:
        return None
    score = round(math.log10(bilirubin.value) * 0.66 + albumin.value * -0.085, 2)
    grade: Literal[1, 2, 3] = 1 if score <= ALBI_GRADE_BOUNDS[0] else 2 if score <= ALBI_GRADE_BOUNDS[1] else 3
    return Albi(score=score, grade=grade)
