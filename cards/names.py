"""Drug and regimen names as the clinician's language writes them (generic names, never brands).

Keys are the canonical names of ``fhir_mappers/terminology.yaml`` and ``models.screening``; a name
the terminology gains later is shown as written until a translation is added.
"""

from __future__ import annotations

from models import screening

from .i18n import N_, _

DRUGS = {
    "sorafenib": N_("sorafenib"),
    "lenvatinib": N_("lenvatinib"),
    "regorafenib": N_("regorafenib"),
    "cabozantinib": N_("cabozantinib"),
    "apatinib": N_("apatinib"),
    "donafenib": N_("donafenib"),
    "pembrolizumab": N_("pembrolizumab"),
    "nivolumab": N_("nivolumab"),
    "tislelizumab": N_("tislelizumab"),
    "toripalimab": N_("toripalimab"),
    "sintilimab": N_("sintilimab"),
    "camrelizumab": N_("camrelizumab"),
    "atezolizumab": N_("atezolizumab"),
    "bevacizumab": N_("bevacizumab"),
    "durvalumab": N_("durvalumab"),
    "ramucirumab": N_("ramucirumab"),
    "ipilimumab": N_("ipilimumab"),
    "tremelimumab": N_("tremelimumab"),
}
REGIMENS = {
    screening.LENVATINIB: N_("lenvatinib"),
    screening.ATEZO_BEV: N_("atezolizumab + bevacizumab"),
    screening.PD1: N_("PD-1 inhibitor"),
}


def drug_name(name: str) -> str:
    return _(DRUGS[name]) if name in DRUGS else name


def regimen_name(name: str) -> str:
    return _(REGIMENS[name]) if name in REGIMENS else name
