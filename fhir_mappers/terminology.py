"""The terminology mapping file: which codes mean which feature.

The shipped default lives beside this module (`terminology.yaml`); a hospital passes its own
path, optionally with `extends: default` to add local codes to the shipped ones. The format is
documented at the top of the YAML file and in README.md.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from fhir_mappers.errors import TerminologyError
from fhir_mappers.features import CodingRef

DEFAULT_FILE = "terminology.yaml"

# section -> keys the mapping code reads. Unknown keys are errors: a typo must not silently
# turn a hospital's codes into dead entries.
SECTIONS: dict[str, frozenset[str]] = {
    "labs": frozenset({"afp", "alt", "ast", "bilirubin", "albumin", "platelets", "inr"}),
    "imaging": frozenset({"tumour_size", "tumour_size_longest", "tumour_count"}),
    "findings": frozenset({"vascular_invasion", "extrahepatic_metastasis"}),
    "finding_values": frozenset({"present", "absent"}),
    "conditions": frozenset(
        {"hcc", "hbv", "hcv", "cirrhosis", "non_viral_liver_disease", "ascites", "hepatic_encephalopathy"}
        | {"varices", "variceal_bleeding", "gi_bleeding", "organ_transplant", "autoimmune_disease"}
    ),
    "staging": frozenset(
        {"child_pugh", "child_pugh_a", "child_pugh_b", "child_pugh_c"}
        | {"bclc", "bclc_0", "bclc_a", "bclc_b", "bclc_c", "bclc_d"}
    ),
    "procedures": frozenset({"hcc_surgery", "upper_endoscopy", "variceal_treatment", "organ_transplant"}),
    "progression": frozenset({"status_codes", "progression_values"}),
    "stop_reasons": frozenset({"toxicity"}),
}
# Sections whose keys may also list `names`, matched against code.text / coding.display.
NAMED_SECTIONS = frozenset({"labs"})
Matched = tuple[tuple[str, ...], dict[str, Any]]  # the keys one coding maps to, and the coding
DRUG_CLASSES = frozenset({"sorafenib", "tki", "pd1_inhibitor", "other_systemic"})
CHECKPOINTS = frozenset({"pd1", "pdl1", "ctla4"})  # immune-checkpoint targets a drug may block
_ICD_MARKERS = ("icd-10", "icd10", "2.16.840.1.113883.6.3", "2.16.840.1.113883.6.90")


def normalise_system(system: str) -> str:
    return system.strip().rstrip("/")


def normalise_code(system: str, code: str) -> str:
    code = code.strip()
    if is_icd10(system):
        return code.replace(".", "").upper()
    return code


@lru_cache(maxsize=8192)
def _index_key(system: str, code: str) -> tuple[str, str]:
    """(system, code) as the indexes hold them; cached because the same codes recur on every call."""
    system = normalise_system(system)
    return system, normalise_code(system, code)


@dataclass(frozen=True)
class Drug:
    name: str
    drug_class: str  # one of DRUG_CLASSES
    names: tuple[str, ...]
    checkpoint: str | None = None  # one of CHECKPOINTS for an immune-checkpoint inhibitor


def is_icd10(system: str) -> bool:
    return any(marker in system for marker in _ICD_MARKERS)


@dataclass
class Terminology:
    """Code look-ups built once from the mapping file; cheap to query on every request."""

    source: str
    # (normalised system, normalised code) -> section -> keys (a code may serve two keys, e.g.
    # LOINC 33728-7 is both a tumour-size observation and the longest-diameter component)
    _index: dict[tuple[str, str], dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # ICD-10 codes declared with `descendants: true`: the code and every code below it (ICD-10
    # codes subdivide by appending characters, so M32 covers M32.1 and M32.14).
    _prefixes: dict[tuple[str, str], dict[str, tuple[str, ...]]] = field(default_factory=dict)
    _resolved: dict[tuple[str, str], dict[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)
    drugs: dict[str, Drug] = field(default_factory=dict)
    _drug_codes: dict[tuple[str, str], str] = field(default_factory=dict)
    _keys: dict[str, dict[str, list[CodingRef]]] = field(default_factory=dict)
    _names: dict[str, tuple[str, str]] = field(default_factory=dict)  # name_key(name) -> (section, key)
    _any_drug_name: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def codes(self, section: str, key: str) -> list[CodingRef]:
        return list(self._keys.get(section, {}).get(key, []))

    def drug_codes(self, name: str) -> list[CodingRef]:
        """The codings declared for a drug, in file order (used to write orderable suggestions)."""
        return self.codes("drugs", name)

    def _keys_by_section(self, coding: object) -> dict[str, tuple[str, ...]]:
        """Section -> the keys one Coding dict maps to (empty if none)."""
        if not isinstance(coding, dict):
            return _NO_SECTIONS
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(code, str):
            return _NO_SECTIONS
        key = _index_key(system, code)
        if not self._prefixes:
            return self._index.get(key, _NO_SECTIONS)
        found = self._resolved.get(key)
        if found is None:
            found = self._with_ancestors(key)
            if len(self._resolved) >= _RESOLVED_MAX:  # bounded: codes come from untrusted input
                self._resolved.clear()
            self._resolved[key] = found
        return found

    def _with_ancestors(self, key: tuple[str, str]) -> dict[str, tuple[str, ...]]:
        """The code's own sections merged with those of every ICD-10 ancestor declared with
        `descendants: true` (K70.31 is both ascites and, through K70, alcoholic liver disease)."""
        found = self._index.get(key, _NO_SECTIONS)
        system, code = key
        if not is_icd10(system):
            return found
        merged = {section: keys for section, keys in found.items()}
        for length in range(len(code), 2, -1):
            for section, keys in self._prefixes.get((system, code[:length]), _NO_SECTIONS).items():
                known = merged.get(section, ())
                merged[section] = (*known, *(k for k in keys if k not in known))
        return merged or _NO_SECTIONS

    def classify(self, concept: object) -> dict[str, list[Matched]]:
        """Section -> the (keys, coding) of each coding of a CodeableConcept dict that maps there,
        in coding order: one pass answers all the sections a mapping call asks about."""
        out: dict[str, list[Matched]] = {}
        for coding in _concept_codings(concept):
            for section, keys in self._keys_by_section(coding).items():
                out.setdefault(section, []).append((keys, coding))
        return out

    def classify_by_name(self, concept: object) -> dict[str, list[Matched]]:
        """classify for a concept none of whose codes maps anywhere: the key whose `names` hold the
        concept's text or a coding's display, compared whole (name_key), never as a substring, so
        "AFP-L3%" or "甲胎蛋白异质体" is not AFP. Names that point to two keys match nothing."""
        if not self._names or not isinstance(concept, dict):
            return _NO_MATCHES
        named: list[dict[str, Any]] = [c for c in _concept_codings(concept) if isinstance(c, dict)]
        if isinstance(concept.get("text"), str):
            named.insert(0, {"display": concept["text"]})
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for holder in named:
            display = holder.get("display")
            target = self._names.get(name_key(display)) if isinstance(display, str) else None
            if target is not None:
                found.setdefault(target, holder)
        if len(found) != 1:
            return _NO_MATCHES
        ((section, key), holder), *_ = found.items()
        return {section: [((key,), holder)]}

    def match(self, section: str, concept: object, keys: Collection[str] | None = None) -> tuple[str, CodingRef] | None:
        """First coding of a CodeableConcept dict that maps to a key of `section` (one of `keys`).
        A plain loop: called for every resource of a kind, where most codes map nowhere."""
        for coding in _concept_codings(concept):
            key = _first_key(self._keys_by_section(coding).get(section, ()), keys)
            if key is not None:
                return key, coding_ref(coding)
        return None

    def match_drug_coding(self, coding: object) -> str | None:
        if not isinstance(coding, dict):
            return None
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(code, str):
            return None
        return self._drug_codes.get(_index_key(system, code))

    def match_drug(self, concept: object) -> tuple[str, CodingRef] | None:
        """Canonical drug name for a medication CodeableConcept dict: codes first, then names
        in the codings' display and the concept's text."""
        if not isinstance(concept, dict):
            return None
        codings = concept.get("coding")
        codings = codings if isinstance(codings, list) else []
        for coding in codings:
            name = self.match_drug_coding(coding)
            if name is not None:
                return name, coding_ref(coding)
        texts: list[tuple[str, dict[str, Any]]] = [
            (coding["display"], coding)
            for coding in codings
            if isinstance(coding, dict) and isinstance(coding.get("display"), str)
        ]
        if isinstance(concept.get("text"), str):
            texts.append((concept["text"], {"display": concept["text"]}))
        if self._any_drug_name is None:  # one scan rejects the common case: no drug name at all
            names = sorted({n for drug in self.drugs.values() for n in drug.names}, key=len, reverse=True)
            self._any_drug_name = re.compile("|".join(map(re.escape, names)) or "(?!)")
        for text, coding in texts:
            lowered = text.lower()
            if not self._any_drug_name.search(lowered):
                continue
            for drug in self.drugs.values():
                if any(n in lowered for n in drug.names):
                    return drug.name, coding_ref(coding)
        return None


_NO_SECTIONS: dict[str, tuple[str, ...]] = {}
_NO_MATCHES: dict[str, list[Matched]] = {}
_RESOLVED_MAX = 20_000


@lru_cache(maxsize=8192)
def name_key(name: str) -> str:
    """A name as compared: NFKC (full-width letters and brackets fold to ASCII), case folded,
    without whitespace; cached because the same lab names recur on every call."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def _concept_codings(concept: object) -> list[Any]:
    """A CodeableConcept dict's codings (empty when it has none or is malformed)."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return codings if isinstance(codings, list) else []


def _first_keyed(matches: Iterable[Matched], keys: Collection[str] | None) -> tuple[str, dict[str, Any]] | None:
    """The first key in `keys` (None: any key) of the first coding that has one, and that coding."""
    for coding_keys, coding in matches:
        key = _first_key(coding_keys, keys)
        if key is not None:
            return key, coding
    return None


def _first_key(coding_keys: tuple[str, ...], keys: Collection[str] | None) -> str | None:
    """The first of one coding's keys that is in `keys` (None: any)."""
    for key in coding_keys:
        if keys is None or key in keys:
            return key
    return None


class Coded(NamedTuple):
    """A resource whose element maps to a terminology key, with its place in the input.

    Holds the Coding dict as received: `coding` (the CodingRef) is built only when read, since
    most lab candidates are never assessed."""

    position: int
    resource: dict[str, Any]
    key: str
    raw_coding: dict[str, Any]  # for a name match, the coding whose display matched, or {"display": text}

    @property
    def coding(self) -> CodingRef:
        return coding_ref(self.raw_coding)


class CodeIndex:
    """One mapping call's resources with their coded elements classified once.

    Every extractor used to match every resource against its own section; with the index each
    visits only the resources that map there, in their original order, first coding first.
    """

    def __init__(
        self,
        terminology: Terminology,
        resources: list[dict[str, Any]],
        elements: tuple[str, ...] = ("code",),
        by_name: tuple[str, ...] = (),
    ) -> None:
        """`by_name`: the elements also matched by name when none of their codes maps anywhere."""
        self._resources = resources
        self._found: dict[tuple[str, str], list[tuple[int, list[Matched]]]] = {}
        self._named: set[tuple[str, int]] = set()  # (element, position) matched by name
        for position, resource in enumerate(resources):
            for element in elements:
                concept = resource.get(element)
                if concept is None:
                    continue
                classified = terminology.classify(concept)
                if not classified and element in by_name:
                    classified = terminology.classify_by_name(concept)
                    if classified:
                        self._named.add((element, position))
                for section, matches in classified.items():
                    self._found.setdefault((element, section), []).append((position, matches))

    def matching(self, section: str, keys: Collection[str] | None = None, element: str = "code") -> Iterator[Coded]:
        """The resources whose `element` maps to a key of `section` (one of `keys`), in order."""
        resources = self._resources
        for position, matches in self._found.get((element, section), ()):
            if keys is None:  # _first_keyed's answer without its loops: every match has a key
                coding_keys, coding = matches[0]
                yield Coded(position, resources[position], coding_keys[0], coding)
                continue
            found = _first_keyed(matches, keys)
            if found is not None:
                yield Coded(position, resources[position], *found)

    def matched_by_name(self, coded: Coded, element: str = "code") -> bool:
        """Whether `coded` was recognised by its name (no code of the element matched)."""
        return (element, coded.position) in self._named


def coding_ref(coding: dict[str, Any]) -> CodingRef:
    system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
    return _coding_ref(
        system if isinstance(system, str) else None,
        code if isinstance(code, str) else None,
        display if isinstance(display, str) else None,
    )


@lru_cache(maxsize=8192)
def _coding_ref(system: str | None, code: str | None, display: str | None) -> CodingRef:
    """Cached: the same codings recur on every call, and a frozen CodingRef can be shared."""
    return CodingRef(system=system, code=code, display=display)


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TerminologyError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TerminologyError(f"{where}: the top level must be a mapping")
    if raw.get("version") != 1:
        raise TerminologyError(f"{where}: 'version: 1' is required")
    allowed = {"version", "extends", "systems", "drugs", *SECTIONS}
    unknown = set(raw) - allowed
    if unknown:
        raise TerminologyError(f"{where}: unknown top-level key(s) {sorted(unknown)}")
    return raw


def _systems(raw: dict[str, Any], where: str) -> dict[str, list[str]]:
    systems = raw.get("systems") or {}
    if not isinstance(systems, dict):
        raise TerminologyError(f"{where}: 'systems' must map alias -> URI or list of URIs")
    out: dict[str, list[str]] = {}
    for alias, uris in systems.items():
        uris = [uris] if isinstance(uris, str) else uris
        if not isinstance(uris, list) or not all(isinstance(u, str) and u for u in uris):
            raise TerminologyError(f"{where}: systems.{alias} must be a URI or a list of URIs")
        out[str(alias)] = [normalise_system(u) for u in uris]
    return out


def _codings(
    entries: object, systems: dict[str, list[str]], where: str
) -> list[tuple[list[str], str, CodingRef, bool]]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise TerminologyError(f"{where}: must be a list of {{system, code, display}}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "system" not in entry or "code" not in entry:
            raise TerminologyError(f"{where}[{i}]: needs 'system' and 'code'")
        system, code = str(entry["system"]), entry["code"]
        if isinstance(code, bool) or not isinstance(code, (str, int)):
            raise TerminologyError(f"{where}[{i}]: 'code' must be a (quoted) string")
        uris = systems.get(system, [normalise_system(system)])
        if system not in systems and "://" not in system and not system.startswith("urn:"):
            raise TerminologyError(f"{where}[{i}]: system {system!r} is neither a declared alias nor a URI")
        descendants = entry.get("descendants", False)
        if not isinstance(descendants, bool) or (descendants and not all(is_icd10(u) for u in uris)):
            raise TerminologyError(f"{where}[{i}]: 'descendants: true' is only for ICD-10 codes")
        display = entry.get("display")
        ref = CodingRef(system=uris[0], code=str(code), display=str(display) if display else None)
        out.append((uris, str(code), ref, descendants))
    return out


def _codes_and_names(section: str, entry: object, where: str) -> tuple[object, list[str]]:
    """A key's codings and names: a list of codings, or in NAMED_SECTIONS {codes: [...], names: [...]}."""
    if not isinstance(entry, dict):
        return entry, []
    if section not in NAMED_SECTIONS:
        raise TerminologyError(f"{where}: must be a list of {{system, code, display}}")
    unknown = set(entry) - {"codes", "names"}
    if unknown:
        raise TerminologyError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: ['codes', 'names']")
    names = entry.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and name_key(n) for n in names):
        raise TerminologyError(f"{where}.names: must be a list of non-empty names")
    return entry.get("codes"), names


def _add_names(terminology: Terminology, section: str, key: str, names: list[str], where: str) -> None:
    """Index a key's names; one name for two keys is an error, not a guess."""
    for name in names:
        known = terminology._names.setdefault(name_key(name), (section, key))
        if known != (section, key):
            raise TerminologyError(f"{where}.names: {name!r} is already a name of {'.'.join(known)}")


def _build(raws: list[tuple[dict[str, Any], str]], source: str) -> Terminology:
    terminology = Terminology(source=source)
    systems: dict[str, list[str]] = {}
    for raw, where in raws:
        systems.update(_systems(raw, where))
    for raw, where in raws:
        for section, keys in SECTIONS.items():
            block = raw.get(section) or {}
            if not isinstance(block, dict):
                raise TerminologyError(f"{where}: '{section}' must be a mapping")
            unknown = set(block) - keys
            if unknown:
                raise TerminologyError(
                    f"{where}: unknown key(s) {sorted(unknown)} in '{section}'; allowed: {sorted(keys)}"
                )
            for key, entry in block.items():
                here = f"{where}: {section}.{key}"
                entries, names = _codes_and_names(section, entry, here)
                _add_names(terminology, section, key, names, here)
                refs = terminology._keys.setdefault(section, {}).setdefault(key, [])
                for uris, code, ref, descendants in _codings(entries, systems, here):
                    refs.append(ref)
                    for uri in uris:
                        index_key = (uri, normalise_code(uri, code))
                        for index in (
                            (terminology._index, terminology._prefixes) if descendants else (terminology._index,)
                        ):
                            sections = index.setdefault(index_key, {})
                            known = sections.get(section, ())
                            if key not in known:
                                sections[section] = (*known, key)
        drugs = raw.get("drugs") or {}
        if not isinstance(drugs, dict):
            raise TerminologyError(f"{where}: 'drugs' must be a mapping")
        for name, spec in drugs.items():
            here = f"{where}: drugs.{name}"
            if not isinstance(spec, dict):
                raise TerminologyError(f"{here}: must be a mapping with class, names, codes")
            previous = terminology.drugs.get(str(name))
            drug_class = spec.get("class", previous.drug_class if previous else None)
            if drug_class not in DRUG_CLASSES:
                raise TerminologyError(f"{here}: class must be one of {sorted(DRUG_CLASSES)}")
            names = spec.get("names") or []
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise TerminologyError(f"{here}: names must be a list of words")
            merged = tuple(dict.fromkeys([*(previous.names if previous else ()), *(n.lower() for n in names)]))
            default_checkpoint = "pd1" if drug_class == "pd1_inhibitor" else None
            checkpoint = spec.get("checkpoint", previous.checkpoint if previous else default_checkpoint)
            if checkpoint is not None and checkpoint not in CHECKPOINTS:
                raise TerminologyError(f"{here}: checkpoint must be one of {sorted(CHECKPOINTS)}")
            terminology.drugs[str(name)] = Drug(str(name), drug_class, merged, checkpoint)
            refs = terminology._keys.setdefault("drugs", {}).setdefault(str(name), [])
            for uris, code, ref, _ in _codings(spec.get("codes"), systems, f"{here}.codes"):
                refs.append(ref)
                for uri in uris:
                    terminology._drug_codes[(uri, normalise_code(uri, code))] = str(name)
    return terminology


def _default_text() -> str:
    return resources.files(__package__).joinpath(DEFAULT_FILE).read_text(encoding="utf-8")


def load_terminology(path: str | Path | None = None) -> Terminology:
    """Load a terminology mapping file (None = the shipped default).

    Raises TerminologyError with the file and the offending key when the file is invalid.
    """
    default = (_read_yaml(_default_text(), f"shipped {DEFAULT_FILE}"), f"shipped {DEFAULT_FILE}")
    if path is None:
        return _build([default], source="default")
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TerminologyError(f"{where}: cannot read terminology file: {exc}") from exc
    raw = _read_yaml(text, where)
    extends = raw.get("extends")
    if extends not in (None, "default"):
        raise TerminologyError(f"{where}: 'extends' must be 'default' or absent")
    raws = [default, (raw, where)] if extends == "default" else [(raw, where)]
    return _build(raws, source=where)
