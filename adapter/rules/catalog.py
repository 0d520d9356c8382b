"""Load and validate the rule data in ``mappings/``.

Each YAML file carries ``kind``, ``id``, ``version`` (semver) and ``effective`` and is validated
by the pydantic model for its kind; the JSON Schemas of those models are exported to
``mappings/schema/`` (``python -m adapter.rules.catalog --export-schema``) so editors and
reviewers can check the data without running Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, model_validator

from adapter.errors import Problem, RuleDataError
from adapter.rules.edit_data import EditPolicy, MueCap, PtpPair, load_mue_file, load_ptp_file
from adapter.rules.rulefile import RuleFile, Strict
from adapter.rules.screening_data import BodySiteMap, ContraindicationPolicy, ContraindicationSet
from adapter.rules.sites import SiteResolver

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
CPT_CODE = r"^[0-9A-Z][0-9]{3}[0-9A-Z]$"  # CPT (97124) or HCPCS Level II (G0283)


# --- procedures -----------------------------------------------------------------------------


class CptCode(Strict):
    cpt: Annotated[str, Field(pattern=CPT_CODE)]
    display: str
    timed: bool = Field(description="15-minute timed code: its minutes take part in the unit computation")
    therapy: bool = Field(description="billed under a therapy plan of care (gets the pack's therapy modifiers)")
    source: str


class SourceCode(Strict):
    system: str
    code: str
    cpt: Annotated[str, Field(pattern=CPT_CODE)]
    display: str
    source: str


class ProcedureMap(RuleFile):
    kind: Literal["procedure-map"]
    codes: list[CptCode]
    source_codes: list[SourceCode] = []

    @model_validator(mode="after")
    def _consistent(self) -> ProcedureMap:
        known = {c.cpt for c in self.codes}
        if len(known) != len(self.codes):
            raise ValueError("a CPT code is listed twice in codes")
        for entry in self.source_codes:
            if entry.cpt not in known:
                raise ValueError(f"source code {entry.system}|{entry.code} maps to {entry.cpt}, not in codes")
        keys = [(e.system, e.code) for e in self.source_codes]
        if len(set(keys)) != len(keys):
            raise ValueError("a source code is mapped twice")
        return self


# --- payer packs ----------------------------------------------------------------------------


class CoverageTypeMatch(Strict):
    system: str
    code_prefix: str = Field(description="matches a Coverage.type coding whose code starts with this")
    source: str


class PayorIdentifierMatch(Strict):
    system: str
    value: str


class PackMatch(Strict):
    coverage_types: list[CoverageTypeMatch] = []
    payor_identifiers: list[PayorIdentifierMatch] = []

    # (a pack is chosen twice per visit, for its time zone and for the Claim: both read these, built once)
    @cached_property
    def type_prefixes(self) -> dict[str, tuple[str, ...]]:
        """The Coverage.type code prefixes by code system (str.startswith takes a tuple of them)."""
        prefixes: dict[str, tuple[str, ...]] = {}
        for m in self.coverage_types:
            prefixes[m.system] = (*prefixes.get(m.system, ()), m.code_prefix)
        return prefixes

    @cached_property
    def payors(self) -> frozenset[tuple[str, str]]:
        return frozenset((m.system, m.value) for m in self.payor_identifiers)


class UnitPolicy(Strict):
    method: Literal["cms-pooled", "ama-per-code"]
    source: str
    pool: Literal["day", "day-and-discipline"] = Field(
        "day",
        description="what the timed minutes are pooled over: the date of service, or the date of service and "
        "the discipline (PT, OT, SLP: separate plans of care)",
    )
    pool_source: str = ""


class UnitsCeiling(Strict):
    max: int = Field(gt=0, description="most units one line (one code, one date of service) may bill unreviewed")
    source: str


class TimelyFiling(Strict):
    months: int = Field(gt=0, description="months after the date of service within which the claim must be filed")
    source: str


class PackLimits(Strict):
    """Plausibility limits every pack states (adapter/rules/plausibility.py): beyond them the Claim is held."""

    units_per_line: UnitsCeiling
    timely_filing: TimelyFiling


class FeeSchedule(Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    placeholder: bool = Field(description="true while the amounts are examples, not a real charge master")
    source: str
    prices: dict[Annotated[str, Field(pattern=CPT_CODE)], Annotated[Decimal, Field(ge=0, decimal_places=2)]]

    @cached_property
    def _cents(self) -> dict[str, int]:
        """The prices in cents, converted from Decimal once per loaded pack (read per line)."""
        return {cpt: int(price * 100) for cpt, price in self.prices.items()}

    def cents(self, cpt: str) -> int | None:
        return self._cents.get(cpt)


# 837P SBR09 claim filing indicator codes (005010X222A1, loop 2000B)
ClaimFilingIndicator = Literal[
    "11", "12", "13", "14", "15", "16", "17", "AM", "BL", "CH", "CI", "DS", "FI", "HM", "LM", "MA", "MB", "MC",
    "OF", "TV", "VA", "WC", "ZZ",
]  # fmt: skip


class PayerPack(RuleFile):
    kind: Literal["payer-pack"]
    name: str
    match: PackMatch
    units: UnitPolicy
    limits: PackLimits
    fee_schedule: FeeSchedule
    edits: EditPolicy = EditPolicy()
    contraindications: ContraindicationPolicy = ContraindicationPolicy()
    claim_filing_indicator: ClaimFilingIndicator | None = Field(
        default=None, description="837P SBR09 (MB Medicare Part B, CI commercial); without it no 837P is written"
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone of the clinics this pack bills for, when the input's Location / Organization "
        "has no timezone extension: the date of service of a UTC timestamp is its date there",
    )

    @model_validator(mode="after")
    def _known_zone(self) -> PayerPack:
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone name") from exc
        return self


RULE_FILE_MODELS: dict[str, type[RuleFile]] = {
    "procedure-map": ProcedureMap,
    "payer-pack": PayerPack,
    "contraindication-set": ContraindicationSet,
    "body-site-map": BodySiteMap,
}


# --- the loaded catalog -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcedureCatalog:
    codes: dict[str, CptCode]
    source_codes: dict[tuple[str, str], SourceCode]
    labels: tuple[str, ...]

    def is_timed(self, cpt: str) -> bool:
        return self.codes[cpt].timed

    @cached_property
    def displays(self) -> dict[str, str]:
        """CPT code -> display, for the output (computed once per loaded catalog)."""
        return {code: entry.display for code, entry in self.codes.items()}


@dataclass(frozen=True)
class EditTables:
    """A pack's NCCI pairs and MUE caps: inline rows plus the rows of the CMS files it names."""

    pairs: tuple[PtpPair, ...]
    caps: dict[str, MueCap]

    @cached_property
    def pairs_by_column1(self) -> dict[str, tuple[PtpPair, ...]]:
        """The pairs by their column-1 code, in table order (a CMS file has thousands of rows; a line meets few)."""
        index: dict[str, list[PtpPair]] = {}
        for pair in self.pairs:
            index.setdefault(pair.column1, []).append(pair)
        return {code: tuple(pairs) for code, pairs in index.items()}


@dataclass(frozen=True)
class Rules:
    procedures: ProcedureCatalog
    payers: dict[str, PayerPack]
    contraindications: ContraindicationSet
    body_sites: BodySiteMap
    edit_tables: dict[str, EditTables]
    fingerprint: str

    @cached_property
    def sites(self) -> SiteResolver:
        return SiteResolver(self.body_sites)


def default_mappings_dir() -> Path:
    """The packaged rule data: inside the wheel, or the top-level folder of a source checkout."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "mappings"
    return packaged if packaged.is_dir() else here.parent / "mappings"


def _read(path: Path) -> RuleFile:
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleDataError([Problem("rule-data-unreadable", f"{where}: {exc}", where, "exception")]) from exc
    kind = raw.get("kind") if isinstance(raw, dict) else None
    model = RULE_FILE_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise RuleDataError([Problem("rule-data-invalid", f"{where}: unknown kind {kind!r}", where, "exception")])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            Problem("rule-data-invalid", f"{where}: {'.'.join(map(str, e['loc']))}: {e['msg']}", where, "exception")
            for e in exc.errors()
        ]
        raise RuleDataError(problems) from exc


# folders under mappings/ that are not claim rule data (output settings and HL7 v2 intake mappings,
# with their own loaders)
NOT_RULE_DATA = frozenset({"schema", "clearinghouses", "hl7v2"})


def load_rules(mappings_dir: Path | None = None) -> Rules:
    """Read every rule file under ``mappings_dir`` (default: the packaged data) and check it."""
    root = mappings_dir or default_mappings_dir()
    files = sorted(p for p in root.rglob("*.yaml") if not NOT_RULE_DATA.intersection(p.relative_to(root).parts))
    loaded = [(path, _read(path)) for path in files]
    procedure_maps = [f for _, f in loaded if isinstance(f, ProcedureMap)]
    packs = [f for _, f in loaded if isinstance(f, PayerPack)]
    contraindication_sets = [f for _, f in loaded if isinstance(f, ContraindicationSet)]
    site_maps = [f for _, f in loaded if isinstance(f, BodySiteMap)]
    if not procedure_maps or not packs or len(contraindication_sets) != 1 or len(site_maps) != 1:
        message = f"{root}: needs procedure maps, payer packs, one contraindication-set and one body-site-map"
        raise RuleDataError([Problem("rule-data-missing", message)])
    codes: dict[str, CptCode] = {}
    source_codes: dict[tuple[str, str], SourceCode] = {}
    for pmap in procedure_maps:
        for code in pmap.codes:
            if code.cpt in codes:
                raise RuleDataError([Problem("rule-data-invalid", f"CPT {code.cpt} defined in two procedure maps")])
            codes[code.cpt] = code
        source_codes.update({(s.system, s.code): s for s in pmap.source_codes})
    payers: dict[str, PayerPack] = {}
    for pack in packs:
        if pack.id in payers:
            raise RuleDataError([Problem("rule-data-invalid", f"payer pack {pack.id} defined twice")])
        payers[pack.id] = pack
    classes = {c.id for c in contraindication_sets[0].classes}
    for pack in packs:
        unpriced = sorted(set(pack.fee_schedule.prices) - set(codes))
        if unpriced:
            raise RuleDataError([Problem("rule-data-invalid", f"payer pack {pack.id} prices unknown codes {unpriced}")])
        unknown_classes = sorted(set(pack.contraindications.by_class) - classes)
        if unknown_classes:
            message = f"payer pack {pack.id} sets actions for unknown contraindication classes {unknown_classes}"
            raise RuleDataError([Problem("rule-data-invalid", message)])
    digest = hashlib.sha256()
    for path, rule_file in loaded:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(rule_file.model_dump_json().encode())
    return Rules(
        procedures=ProcedureCatalog(codes, source_codes, tuple(m.label for m in procedure_maps)),
        payers=payers,
        contraindications=contraindication_sets[0],
        body_sites=site_maps[0],
        edit_tables={pack.id: _edit_tables(root, pack, digest) for pack in packs},
        fingerprint=digest.hexdigest(),
    )


def _edit_tables(root: Path, pack: PayerPack, digest: hashlib._Hash) -> EditTables:
    file_rows: list[PtpPair] = []
    caps = {cap.cpt: cap for cap in pack.edits.mue.caps}
    try:
        for name in pack.edits.ncci.files:
            file_rows += load_ptp_file(root / name)
            digest.update((root / name).read_bytes())
        for name in pack.edits.mue.files:
            caps.update({cap.cpt: cap for cap in load_mue_file(root / name)})
            digest.update((root / name).read_bytes())
    except (OSError, ValueError) as exc:
        where = f"payer pack {pack.id}"
        raise RuleDataError(
            [Problem("rule-data-invalid", f"{where}: CMS edit file: {exc}", where, "exception")]
        ) from exc
    return EditTables(pack.edits.ncci.merged_with(file_rows), caps)


def export_schemas(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, model in RULE_FILE_MODELS.items():
        path = target / f"{kind}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def missing_prices(rules: Rules) -> list[str]:
    """``pack: CPT`` for every catalog code a payer pack has no price for (such a line is held)."""
    return [
        f"{pack_id}: {cpt}"
        for pack_id, pack in sorted(rules.payers.items())
        for cpt in sorted(rules.procedures.codes)
        if pack.fee_schedule.cents(cpt) is None
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the rule data, or export its JSON Schemas.")
    parser.add_argument("--export-schema", action="store_true", help="write mappings/schema/*.schema.json")
    parser.add_argument("mappings", nargs="?", type=Path, help="rule data folder (default: the packaged mappings/)")
    args = parser.parse_args(argv)
    if args.export_schema:
        for path in export_schemas(default_mappings_dir() / "schema"):
            print(path)
    try:
        rules = load_rules(args.mappings)
    except RuleDataError as error:
        print(f"theraclaim: broken rule data: {error}", file=sys.stderr)
        return 3
    print(
        f"rule data ok: {len(rules.procedures.codes)} CPT codes, packs {sorted(rules.payers)}, {rules.fingerprint[:12]}"
    )
    for missing in missing_prices(rules):
        print(
            f"warning: no price for CPT {missing.split(': ')[1]} in pack {missing.split(': ')[0]}: "
            "a line of it is held (no-fee-schedule-entry)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
