"""Write the clinical vignettes as FHIR R4 Bundles, and their README, from one definition.

Run by hand after changing a vignette:

    .venv/bin/python tests/vignettes/make_bundles.py

Each vignette is one patient's record plus the draft order(s) of the hook call, as a FHIR R4
Bundle of type "collection" in ``bundles/NN-short-name.json``. The expectations (which card, which
suggestions, which regimen withheld and why) live in ``vignettes.yaml``; README.md is generated
from that file and the bundles, so that the table cannot drift from what the tests assert.
``test_vignettes.py`` checks that this script reproduces the committed files exactly.

Every resource id is fixed ("v07-afp", "v07-draft-sorafenib"): the output is deterministic.
All dates are relative to the order date 2026-11-20 (the draft orders' authoredOn).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: fhir_factory

import fhir_factory as ff  # noqa: E402

BUNDLES = HERE / "bundles"
VIGNETTES_YAML = HERE / "vignettes.yaml"
README = HERE / "README.md"

ORDER_DATE = "2026-11-20"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ATC = "http://www.whocc.no/atc"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"

Resource = dict[str, Any]


class Record:
    """One vignette's resources, each given a fixed, readable id ("v07-afp")."""

    def __init__(self, number: int):
        self.prefix = f"v{number:02d}"
        self.patient = f"{self.prefix}-patient"
        self.resources: list[Resource] = [
            {"resourceType": "Patient", "id": self.patient, "gender": "male", "birthDate": "1960-05-01"}
        ]

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient}"}

    def add(self, name: str, resource: Resource) -> Resource:
        rest = {k: v for k, v in copy.deepcopy(resource).items() if k not in ("resourceType", "id")}
        resource = {"resourceType": resource["resourceType"], "id": f"{self.prefix}-{name}", **rest}
        self.resources.append(resource)
        return resource

    # -- labs and observations ---------------------------------------------------------------

    def afp(self, value: Any, when: str = "2026-11-10", name: str = "afp") -> Resource:
        return self.add(name, ff.afp(value, when, patient=self.patient))

    def alt(self, value: Any, when: str = "2026-11-12", name: str = "alt") -> Resource:
        return self.add(name, ff.alt(value, when, patient=self.patient))

    def liver_labs(self, bilirubin: float, albumin: float, inr: float, when: str = "2026-11-12") -> None:
        """Total bilirubin (mg/dL), albumin (g/dL) and INR: the Child-Pugh laboratory items."""
        self.add("bilirubin", ff.lab("1975-2", bilirubin, "mg/dL", when, patient=self.patient))
        self.add("albumin", ff.lab("1751-7", albumin, "g/dL", when, patient=self.patient))
        self.add("inr", ff.lab("6301-6", inr, "INR", when, ucum="{INR}", patient=self.patient))

    def child_pugh(self, klass: str, when: str = "2026-11-12") -> Resource:
        """A Child-Pugh class recorded as text (no standard code exists), as in tests/cards."""
        return self.add(
            "child-pugh",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Child-Pugh classification"},
                "subject": {"reference": f"Patient/{self.patient}"},
                "effectiveDateTime": when,
                "valueString": f"Child-Pugh {klass}",
            },
        )

    def progression(self, when: str) -> Resource:
        return self.add("progression", ff.progression(when, patient=self.patient))

    # -- conditions and procedures -----------------------------------------------------------

    def condition(
        self,
        name: str,
        code: str,
        display: str,
        *,
        system: str = ff.ICD10,
        clinical_status: str = "active",
        onset: str | None = None,
    ) -> Resource:
        resource = ff.condition(code, display, system=system, patient=self.patient)
        resource["clinicalStatus"]["coding"][0]["code"] = clinical_status
        if onset:
            resource["onsetDateTime"] = onset
        return self.add(name, resource)

    def hcc(self) -> None:
        self.condition("hcc", "C22.0", "Liver cell carcinoma")

    def hbv(self) -> None:
        self.condition("hbv", "B18.1", "Chronic viral hepatitis B without delta-agent")

    def endoscopy(self, performed: str = "2026-09-15") -> Resource:
        return self.add("egd", ff.endoscopy(performed, patient=self.patient))

    # -- medications -------------------------------------------------------------------------

    def medication_request(self, name: str, coding: dict, authored: str, status: str) -> Resource:
        return self.add(name, ff.medication_request(coding, authored, status=status, patient=self.patient))

    def draft(self, coding: dict, drug: str | None = None) -> Resource:
        """The order being placed: a MedicationRequest with status draft, authored on the order date."""
        return self.medication_request(
            f"draft-{drug or coding['display'].split()[0].lower()}", coding, ORDER_DATE, "draft"
        )

    def medication(self, name: str, coding: dict) -> Resource:
        return self.add(name, {"resourceType": "Medication", "code": {"coding": [coding], "text": coding["display"]}})


def by_reference(order: Resource, reference: dict) -> Resource:
    """Name the drug of a MedicationRequest by medicationReference instead of a CodeableConcept."""
    del order["medicationCodeableConcept"]
    order["medicationReference"] = reference
    return order


# ----------------------------------------------------------------------------- base records


def first_line_base(
    r: Record,
    *,
    afp: Any = 1250.0,
    alt: Any = 65.0,
    child_pugh: str | None = "A",
    endoscopy: str | None = "2026-09-15",
    hbv: bool = True,
    draft: bool = True,
) -> None:
    """HCC + HBV, AFP 1250 ng/mL, ALT 65 U/L, Child-Pugh A, an endoscopy 2 months ago, sorafenib draft."""
    r.hcc()
    if hbv:
        r.hbv()
    if afp is not None:
        r.afp(afp)
    if alt is not None:
        r.alt(alt)
    if child_pugh:
        r.child_pugh(child_pugh)
    if endoscopy:
        r.endoscopy(endoscopy)
    if draft:
        r.draft(ff.SORAFENIB)


def second_line_base(
    r: Record,
    *,
    progression: str | None = None,
    sorafenib_start: str = "2026-03-01",
    child_pugh: str | None = "A",
    draft: dict | None = ff.LENVATINIB,
) -> Resource:
    """HCC + HBV, Child-Pugh A, sorafenib completed (started 2026-03-01), lenvatinib draft."""
    r.hcc()
    r.hbv()
    if child_pugh:
        r.child_pugh(child_pugh)
    sorafenib = r.medication_request("sorafenib", ff.SORAFENIB, sorafenib_start, "completed")
    if progression:
        r.progression(progression)
    if draft:
        r.draft(draft)
    return sorafenib


def toxicity_stop(order: Resource, reason: dict) -> None:
    order["status"] = "stopped"
    order["statusReason"] = reason


SINTOL = {"coding": [{"system": STATUS_REASON, "code": "sintol", "display": "Suspected intolerance"}]}


# ----------------------------------------------------------------------------- the vignettes
# Each function fills a Record; the registry maps NN-short-name -> function.

VIGNETTES: dict[str, Callable[[Record], None]] = {}


def vignette(name: str):
    def register(build: Callable[[Record], None]) -> Callable[[Record], None]:
        VIGNETTES[name] = build
        return build

    return register


# First line --------------------------------------------------------------------------------


@vignette("01-base-both-markers-high")
def _(r):
    first_line_base(r)


@vignette("02-alt-normal")
def _(r):
    first_line_base(r, alt=30.0)


@vignette("03-markers-not-raised")
def _(r):
    first_line_base(r, afp=12.0, alt=25.0)


@vignette("04-no-afp")
def _(r):
    first_line_base(r, afp=None)


@vignette("05-afp-negative")
def _(r):
    first_line_base(r, afp=-5.0)


@vignette("06-alt-negative-huge")
def _(r):
    first_line_base(r, alt=-1000000.0)


@vignette("07-afp-1e308")
def _(r):
    first_line_base(r, afp=1e308)


@vignette("08-alt-value-as-string")
def _(r):
    first_line_base(r, alt="80")


@vignette("09-bleeding-varices-lupus-transplant")
def _(r):
    first_line_base(r)
    r.condition("varices-bleeding", "I85.11", "Secondary esophageal varices with bleeding", system=ICD10CM)
    r.condition("lupus", "M32.9", "Systemic lupus erythematosus, unspecified", system=ICD10CM)
    r.condition("liver-transplant", "Z94.4", "Liver transplant status", system=ICD10CM)


@vignette("10-untreated-varices")
def _(r):
    first_line_base(r)
    r.condition("varices", "I85.00", "Esophageal varices without bleeding", system=ICD10CM)


@vignette("11-endoscopy-too-old")
def _(r):
    first_line_base(r, endoscopy="2026-03-01")


@vignette("12-no-endoscopy")
def _(r):
    first_line_base(r, endoscopy=None)


@vignette("13-recent-gi-bleeding")
def _(r):
    first_line_base(r)
    r.condition("gi-bleeding", "K92.2", "Gastrointestinal hemorrhage, unspecified", onset="2026-08-01")


@vignette("14-old-resolved-gi-bleeding")
def _(r):
    first_line_base(r)
    r.condition(
        "gi-bleeding",
        "K92.2",
        "Gastrointestinal hemorrhage, unspecified",
        onset="2025-01-01",
        clinical_status="resolved",
    )


@vignette("15-active-ulcerative-colitis")
def _(r):
    first_line_base(r)
    r.condition(
        "ulcerative-colitis", "K51.90", "Ulcerative colitis, unspecified, without complications", system=ICD10CM
    )


@vignette("16-inactive-rheumatoid-arthritis")
def _(r):
    first_line_base(r)
    r.condition(
        "rheumatoid-arthritis",
        "M05.79",
        "Rheumatoid arthritis with rheumatoid factor of multiple sites without organ or systems involvement",
        system=ICD10CM,
        clinical_status="inactive",
    )


@vignette("17-child-pugh-c-by-labs")
def _(r):
    first_line_base(r, child_pugh=None)
    r.liver_labs(bilirubin=4.5, albumin=2.4, inr=2.5)


@vignette("18-child-pugh-c-labs-vs-coded-a")
def _(r):
    first_line_base(r)
    r.liver_labs(bilirubin=4.5, albumin=2.4, inr=2.5)


@vignette("19-child-pugh-b")
def _(r):
    first_line_base(r, child_pugh="B")
    r.liver_labs(bilirubin=0.8, albumin=4.0, inr=1.1)


@vignette("20-child-pugh-unrecorded-normal-labs")
def _(r):
    first_line_base(r, child_pugh=None)
    r.liver_labs(bilirubin=0.8, albumin=4.0, inr=1.1)


@vignette("21-child-pugh-unrecorded-no-labs")
def _(r):
    first_line_base(r, child_pugh=None)


@vignette("22-nash-without-viral-hepatitis")
def _(r):
    first_line_base(r, hbv=False)
    r.condition("nash", "K75.81", "Nonalcoholic steatohepatitis (NASH)", system=ICD10CM)


@vignette("23-alcoholic-cirrhosis-and-hbv")
def _(r):
    first_line_base(r)
    r.condition("alcoholic-cirrhosis", "K70.30", "Alcoholic cirrhosis of liver without ascites", system=ICD10CM)


@vignette("24-no-aetiology-coded")
def _(r):
    first_line_base(r, hbv=False)


@vignette("25-conditions-unreadable")
def _(r):
    first_line_base(r)


@vignette("26-procedures-unreadable")
def _(r):
    first_line_base(r)


@vignette("27-prior-lenvatinib")
def _(r):
    first_line_base(r)
    r.medication_request("lenvatinib", ff.LENVATINIB, "2026-01-10", "completed")


@vignette("28-prior-atezolizumab")
def _(r):
    first_line_base(r)
    r.medication_request(
        "atezolizumab", {"system": ATC, "code": "L01FF05", "display": "atezolizumab"}, "2026-01-10", "completed"
    )


@vignette("29-sorafenib-refill")
def _(r):
    first_line_base(r)
    r.medication_request("sorafenib", ff.SORAFENIB, "2026-10-01", "active")


@vignette("30-sorafenib-refill-cards-on")
def _(r):
    first_line_base(r)
    r.medication_request("sorafenib", ff.SORAFENIB, "2026-10-01", "active")


@vignette("31-amoxicillin")
def _(r):
    first_line_base(r, draft=False)
    r.draft(ff.AMOXICILLIN, drug="amoxicillin")


@vignette("32-draft-by-medication-reference")
def _(r):
    first_line_base(r, draft=False)
    r.medication("med-sora", ff.SORAFENIB)
    by_reference(r.draft(ff.SORAFENIB), {"reference": "Medication/v32-med-sora"})


@vignette("33-draft-by-reference-display-only")
def _(r):
    first_line_base(r, draft=False)
    by_reference(r.draft(ff.SORAFENIB), {"reference": "Medication/unknown", "display": "sorafenib 200 MG Oral Tablet"})


# Second line -------------------------------------------------------------------------------


@vignette("34-progression-day-61-primary")
def _(r):
    second_line_base(r, progression="2026-05-01")


@vignette("35-progression-day-153-secondary")
def _(r):
    second_line_base(r, progression="2026-08-01")


@vignette("36-progression-day-85-borderline")
def _(r):
    second_line_base(r, progression="2026-05-25")


@vignette("37-progression-day-91-borderline")
def _(r):
    second_line_base(r, progression="2026-05-31")


@vignette("38-progression-day-92-borderline")
def _(r):
    second_line_base(r, progression="2026-06-01")


@vignette("39-progression-day-131")
def _(r):
    second_line_base(r, progression="2026-07-10")


@vignette("40-no-progression")
def _(r):
    second_line_base(r)


@vignette("41-toxicity-stop-coded")
def _(r):
    toxicity_stop(second_line_base(r), SINTOL)


@vignette("42-toxicity-stop-text")
def _(r):
    toxicity_stop(second_line_base(r), {"text": "hand-foot skin reaction grade 3"})


@vignette("43-progression-and-toxicity-stop")
def _(r):
    toxicity_stop(second_line_base(r, progression="2026-05-01"), SINTOL)


@vignette("44-prior-pembrolizumab")
def _(r):
    second_line_base(r, progression="2026-05-01")
    r.medication_request("pembrolizumab", ff.PEMBROLIZUMAB, "2025-12-01", "completed")


@vignette("45-liver-transplant")
def _(r):
    second_line_base(r, progression="2026-05-01")
    r.condition("liver-transplant", "Z94.4", "Liver transplant status", system=ICD10CM)


@vignette("46-active-crohns")
def _(r):
    second_line_base(r, progression="2026-05-01")
    r.condition("crohns", "K50.90", "Crohn's disease, unspecified, without complications", system=ICD10CM)


@vignette("47-sorafenib-start-month-only")
def _(r):
    second_line_base(r, progression="2026-05-25", sorafenib_start="2026-03")


@vignette("48-pd1-already-drafted")
def _(r):
    second_line_base(r, progression="2026-05-01")
    r.draft(ff.PEMBROLIZUMAB)


@vignette("49-sorafenib-reordered-after-progression")
def _(r):
    second_line_base(r, progression="2026-05-01", draft=ff.SORAFENIB)


@vignette("50-history-by-medication-reference")
def _(r):
    r.medication("med-sora", ff.SORAFENIB)
    sorafenib = second_line_base(r, progression="2026-05-01")
    by_reference(sorafenib, {"reference": "Medication/v50-med-sora"})


@vignette("51-second-line-child-pugh-c-by-labs")
def _(r):
    second_line_base(r, progression="2026-05-01", child_pugh=None)
    r.liver_labs(bilirubin=4.5, albumin=2.4, inr=2.5)


@vignette("52-second-line-child-pugh-b")
def _(r):
    second_line_base(r, progression="2026-05-01", child_pugh="B")


@vignette("53-resistance-type-undetermined")
def _(r):
    second_line_base(r, progression="2026-06-10", sorafenib_start="2026-03")


@vignette("54-pd1-drafted-after-transplant")
def _(r):
    second_line_base(r, progression="2026-05-01")
    r.condition("liver-transplant", "Z94.4", "Liver transplant status", system=ICD10CM)
    r.draft(ff.PEMBROLIZUMAB)


@vignette("55-chinese-lab-codes-afp-as-text")
def _(r):
    first_line_base(r, afp=None, alt=None)
    r.add(
        "afp",
        ff.local_lab("afp", "LIS-AFP", "2026-11-10", display="甲胎蛋白", valueString="＞1210 ng/mL", subject=r.subject),
    )
    r.add(
        "alt",
        ff.local_lab("alt", "LIS-ALT", "2026-11-12", text="谷丙转氨酶", valueQuantity={"value": 65, "unit": "U/L"}),
    )


@vignette("56-afp-l3-fraction-only")
def _(r):
    first_line_base(r, afp=None)
    r.add(
        "afp-l3",
        ff.local_lab("afp-l3", "LIS-AFPL3", "2026-11-10", display="AFP-L3%", valueQuantity={"value": 35, "unit": "%"}),
    )


# ----------------------------------------------------------------------------- output


def bundle(name: str) -> Resource:
    number = int(name.split("-", 1)[0])
    record = Record(number)
    VIGNETTES[name](record)
    return {
        "resourceType": "Bundle",
        "id": record.prefix,
        "type": "collection",
        "entry": [{"resource": resource} for resource in record.resources],
    }


def dumps(resource: Resource) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def load_vignettes(path: Path = VIGNETTES_YAML) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["vignettes"]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _card_text(card: dict[str, Any]) -> str:
    said = [f"{card['summary_startswith']} …"] if card.get("summary_startswith") else []
    said += [f"“{text}”" for text in card.get("summary_contains") or []]
    return f"`{card['topic']}` ({card['indicator']})" + (f": {'; '.join(said)}" if said else "")


def _offered_text(card: dict[str, Any]) -> str:
    offered = card.get("offered") or []
    if not offered:
        return "none"
    return "; ".join(
        f"{label[len('startswith:') :].strip()} …" if label.startswith("startswith:") else label for label in offered
    )


def _withheld_text(card: dict[str, Any]) -> str:
    withheld = card.get("withheld") or []
    return "; ".join(f"{w['regimen']} (because {', '.join(w['because'])})" for w in withheld) or "–"


def readme(vignettes: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for v in vignettes:
        counts[v["scenario"]] = counts.get(v["scenario"], 0) + 1
    lines = [
        "# Clinical vignettes",
        "",
        "<!-- Generated by tests/vignettes/make_bundles.py from vignettes.yaml: do not edit by hand. -->",
        "",
        "Each vignette is one patient's record and the draft order(s) of one CDS Hooks call, as a FHIR R4",
        "Bundle (type `collection`) in `bundles/`. `test_vignettes.py` sends it to the running service",
        "(draft MedicationRequests as `context.draftOrders`, the rest as prefetch; order date 2026-11-20)",
        "and checks every expectation in `vignettes.yaml`: the cards, their topic and indicator, the",
        "text, the exact suggestions offered (a suggestion is a one-click order) and the regimens",
        "withheld with the reason. A vignette marked `xfail` in the yaml documents a known gap.",
        "",
        "Regenerate the bundles and this file after editing a vignette:",
        "`.venv/bin/python tests/vignettes/make_bundles.py`.",
        "",
        "## Counts per scenario",
        "",
        "| Scenario | Vignettes |",
        "|---|---|",
        *(f"| {scenario} | {n} |" for scenario, n in counts.items()),
        f"| **total** | **{len(vignettes)}** |",
        "",
        "## Vignettes",
        "",
        "| Id | Description | Expected card | Suggestions offered | Withheld (because) | Why |",
        "|---|---|---|---|---|---|",
    ]
    for v in vignettes:
        cards = v["expect"]["cards"]
        extra = []
        if v.get("settings"):
            extra.append(f"settings {json.dumps(v['settings'])}")
        if v.get("prefetch_errors"):
            extra.append(f"prefetch errors: {', '.join(v['prefetch_errors'])}")
        if v.get("hook", "order-select") != "order-select":
            extra.append(f"hook {v['hook']}")
        if v.get("xfail"):
            extra.append(f"**xfail**: {v['xfail']}")
        description = v["description"] + (f" ({'; '.join(extra)})" if extra else "")
        id_cell = f"[{v['id']}](bundles/{v['bundle']})"
        if not cards:
            lines.append(
                f"| {id_cell} | {_cell(description)} | no card | – | – | {_cell(v['expect'].get('why', ''))} |"
            )
            continue
        for card in cards:
            lines.append(
                f"| {id_cell} | {_cell(description)} | {_cell(_card_text(card))} | {_cell(_offered_text(card))} "
                f"| {_cell(_withheld_text(card))} | {_cell(card.get('why', ''))} |"
            )
    return "\n".join(lines) + "\n"


def build() -> dict[str, str]:
    """Every generated file (path relative to this folder -> its text)."""
    files = {f"bundles/{name}.json": dumps(bundle(name)) for name in VIGNETTES}
    files["README.md"] = readme(load_vignettes())
    return files


def main() -> None:
    files = build()
    BUNDLES.mkdir(exist_ok=True)
    for stale in BUNDLES.glob("*.json"):
        if f"bundles/{stale.name}" not in files:
            stale.unlink()
    for relative, text in files.items():
        (HERE / relative).write_text(text, encoding="utf-8")
    print(f"wrote {len(files) - 1} bundles and README.md to {HERE}")


if __name__ == "__main__":
    main()
