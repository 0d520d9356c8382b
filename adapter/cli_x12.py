"""``theraclaim convert --format x12`` and ``theraclaim export-837``: the 837P doors of the command line.

Nothing with patient data goes to stderr: Claim ids, Encounter references, codes and FHIRPaths.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from adapter.errors import InputError, Problem
from adapter.output.x12 import NotExportable, fixed_envelope, interchange_of, load_profile
from adapter.pipeline import Result
from adapter.rules.catalog import Rules, load_rules
from adapter.service.settings import Settings


def add_convert_options(convert: argparse.ArgumentParser) -> None:
    convert.add_argument(
        "--format", choices=("fhir", "x12"), default="fhir", help="fhir (a Bundle, the default) or x12 (an 837P)"
    )
    convert.add_argument("--profile", help="clearinghouse profile id for --format x12 (default: the only one)")


def add_export_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export-837",
        help="write one 837P interchange with every Claim of the store not exported yet",
        description="Every active Claim, replacement (a new version of an exported Claim) and void (an exported "
        "Claim cancelled) of THERACLAIM_DATABASE_URL not yet exported, in one interchange, recorded in the same "
        "transaction. Held (draft) Claims and Claims lacking what an 837P needs are listed on stderr. Exit 0 "
        "(written, or nothing new), 1 (some Claims could not be exported), 2 (usage; --again of an unknown number).",
    )
    export.add_argument("--out", required=True, help="file to write (- for stdout); nothing is written without Claims")
    export.add_argument("--profile", help="clearinghouse profile id (default: the only one)")
    export.add_argument("--since", type=date.fromisoformat, help="only Claim versions recorded on or after DATE")
    export.add_argument("--now", help="date-time of the interchange (default: the clock)")
    export.add_argument(
        "--again", type=int, metavar="ISA13", help="write the interchange with this control number again"
    )


def add_ack_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ack = commands.add_parser(
        "read-999",
        help="record a 999 acknowledgment (accepted / rejected per Claim) on the export records",
        description="Exit 0 (recorded), 1 (a transaction set was rejected or is not one of ours), 2 (not a 999).",
    )
    ack.add_argument("file", help="the 999 file")


def add_payer_number_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    number = commands.add_parser(
        "payer-claim-number",
        help="record the payer's claim number of an exported Claim (REF*F8 of its replacements and voids)",
        description="Exit 0 (recorded), 2 (no export of that Claim version, or a number an 837P cannot carry).",
    )
    number.add_argument("claim", help="the Claim id")
    number.add_argument("number", help="the payer's claim control number (from its 277CA or 835)")
    number.add_argument("--version", type=int, help="the exported Claim version (default: the last one exported)")


def payer_number_command(args: argparse.Namespace, settings: Settings) -> int:
    from adapter.service.migrate import upgrade
    from adapter.service.store import Store
    from adapter.service.x12store import X12Store

    store = Store(settings.database_url)
    upgrade(store)
    try:
        recorded = X12Store(store, load_rules(settings.mappings_dir)).set_payer_claim_number(
            args.claim, args.version, args.number
        )
    except NotExportable as error:
        print(f"theraclaim payer-claim-number: {error}", file=sys.stderr)
        return 2
    if not recorded:
        print(f"theraclaim payer-claim-number: Claim/{args.claim} has no such export", file=sys.stderr)
        return 2
    return 0


def read_999_command(args: argparse.Namespace, settings: Settings) -> int:
    from adapter.output.x12.ack import read_999
    from adapter.service.migrate import upgrade
    from adapter.service.store import Store
    from adapter.service.x12store import X12Store

    try:
        with open(args.file, "rb") as handle:
            acks = read_999(handle.read())
    except OSError as exc:
        print(f"theraclaim read-999: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except InputError as error:
        print(f"theraclaim read-999: {error}", file=sys.stderr)
        return 2
    store = Store(settings.database_url)
    upgrade(store)
    words = {"A": "accepted", "E": "accepted with errors", "R": "rejected"}
    clean = True
    for ack, claim in X12Store(store, load_rules(settings.mappings_dir)).record_acknowledgments(acks):
        where = f"Claim/{claim}" if claim else "no export has this transaction set"
        print(f"ST02 {ack.transaction:04d}: {words[ack.code]} ({where})", file=sys.stderr)
        clean = clean and claim is not None and ack.code != "R"
    return 0 if clean else 1


def _problems(problems: list[Problem]) -> str:
    return "\n".join(f"  {p.expression or '-'}: {p.message} [{p.code}]" for p in problems)


def convert_x12(args: argparse.Namespace, result: Result, rules: Rules, now: datetime, mappings: Path | None) -> int:
    """The 837P of the Bundle's billable Claims on stdout; held ones on stderr; exit codes as convert."""
    if result.invalid:
        issues = result.bundle["entry"][0]["resource"]["issue"]
        lines = [f"  {', '.join(i.get('expression', ['-']))}: {i['details']['text']}" for i in issues]
        print("theraclaim convert: invalid input:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    profile = load_profile(args.profile, mappings)
    ready = [d for d in result.decisions if d.status == "active"]
    for decision in result.decisions:
        if decision.status == "draft":
            print(
                f"{decision.encounter.ref}: Claim {decision.claim_id} held for review: not in the 837P", file=sys.stderr
            )
        elif decision.status is None:
            print(f"{decision.encounter.ref}: no Claim", file=sys.stderr)
    if not ready:
        print("no active Claim: no 837P written", file=sys.stderr)
        return result.exit_code
    try:
        content = interchange_of(ready, rules, profile, fixed_envelope(len(ready)), now)
    except NotExportable as error:
        print(f"theraclaim convert: cannot write an 837P:\n{_problems(error.problems)}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(content)
    sys.stdout.flush()
    print(f"837P: {len(ready)} claim(s), profile {profile.id} (ISA15 {profile.usage_indicator})", file=sys.stderr)
    return result.exit_code


class _Output:
    """The whole file or nothing: written beside the target inside the export's transaction (a full
    disk rolls the export back), renamed over the target once the transaction committed."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.temporary: Path | None = None
        self.content = b""

    def stage(self, content: bytes) -> None:
        self.content = content
        if self.target == "-":
            return
        path = Path(self.target)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        self.temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
        except BaseException:
            self.discard()
            raise

    def publish(self) -> None:
        if self.target == "-":
            sys.stdout.buffer.write(self.content)
            sys.stdout.flush()
        elif self.temporary is not None:
            os.replace(self.temporary, self.target)

    def discard(self) -> None:
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)


def export_837(args: argparse.Namespace, settings: Settings) -> int:
    from adapter.service.migrate import upgrade  # the store loads only for the commands that use it
    from adapter.service.store import Store
    from adapter.service.x12store import X12Store

    store = Store(settings.database_url)
    upgrade(store)
    exports = X12Store(store, load_rules(settings.mappings_dir))
    if args.again is not None:
        content = exports.again(args.again)
        if content is None:
            print(f"theraclaim export-837: no interchange {args.again} in the store", file=sys.stderr)
            return 2
        output = _Output(args.out)
        output.stage(content)
        output.publish()
        return 0
    try:
        now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC).replace(microsecond=0)
    except ValueError:
        print(f"theraclaim export-837: --now {args.now!r} is not an ISO 8601 date-time", file=sys.stderr)
        return 2
    if now.tzinfo is None:
        print("theraclaim export-837: --now needs a time zone", file=sys.stderr)
        return 2
    profile = load_profile(args.profile, settings.mappings_dir)
    output = _Output(args.out)
    try:
        export = exports.export(profile, now, args.since, output.stage)
    except BaseException:
        output.discard()
        raise
    for skipped in export.skipped:
        why = "held for review (draft)" if skipped.reason == "held" else "cannot be written as an 837P"
        detail = f"\n{_problems(list(skipped.problems))}" if skipped.problems else ""
        print(f"Claim/{skipped.claim_id}/_history/{skipped.version_id}: {why}{detail}", file=sys.stderr)
    if export.content is None:
        print("nothing new to export", file=sys.stderr)
    else:
        output.publish()
        kinds = {"1": "original", "7": "replacement", "8": "void"}
        for sent in export.sent:
            print(f"Claim/{sent.claim_id}/_history/{sent.version_id}: {kinds[sent.frequency]}", file=sys.stderr)
        print(f"interchange {export.control_number}: {len(export.sent)} claim(s) -> {args.out}", file=sys.stderr)
    return 1 if any(s.reason == "not-exportable" for s in export.skipped) else 0
