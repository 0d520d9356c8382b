"""The ``theraclaim`` command.

Exit status of ``convert``: 0 every Encounter produced a Claim; 1 at least one produced none;
2 invalid input or usage (the Bundle then holds only the OperationOutcome); 3 broken rule data
or settings (a deployment problem).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from adapter.batch import Job, Tally, default_workers, looks_like_one_document, run_batch
from adapter.bulk import BulkIndex
from adapter.cli_x12 import (
    add_ack_command,
    add_convert_options,
    add_export_command,
    add_payer_number_command,
    convert_x12,
    export_837,
    payer_number_command,
    read_999_command,
)
from adapter.errors import InputError, Problem, RuleDataError, to_operation_outcome
from adapter.intake.validation import VALIDATION_LEVELS
from adapter.output.fhir import render_invalid
from adapter.pipeline import Result, run
from adapter.rules.catalog import load_rules
from adapter.service.delivery import cli as delivery_cli
from adapter.service.delivery.config import DestinationError
from adapter.service.settings import Settings
from adapter.source.bulk_export import export
from adapter.source.subscribe import create, listed, subscription
from adapter.sourcing import (
    SourceClient,
    SourceError,
    SourceProblem,
    amend,
    observation_codes,
    pull_or_fill,
    source_config,
)
from adapter.version import __version__

EXIT_BROKEN_DEPLOYMENT = 3
EXIT_SOURCE_UNAVAILABLE = 4
T = TypeVar("T")


def _aware(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--now needs a time zone (e.g. {value}Z or {value}+00:00)")
    return parsed


def _since(value: str) -> str:
    """A date (midnight UTC) or an instant with a time zone, as the FHIR instant ``_since`` takes."""
    if len(value) == 10:
        try:
            return f"{date.fromisoformat(value).isoformat()}T00:00:00Z"
        except ValueError:
            pass
    return _aware(value).isoformat()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="theraclaim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"theraclaim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert",
        help="convert a FHIR R4 Bundle (JSON) into Claims",
        description="Write one FHIR Bundle (collection) with the Claims, Provenance "
        "and an OperationOutcome to stdout; a summary goes to stderr.",
    )
    convert.add_argument("file", nargs="?", help="Bundle JSON file, or - for standard input")
    convert.add_argument(
        "--encounter",
        metavar="URL",
        help="pull the visit from the source instead: the Encounter's URL there (or Encounter/<id> on "
        "THERACLAIM_SOURCE_FHIR_BASE)",
    )
    convert.add_argument("--payer", help="payer pack id, overriding the match on the Coverage")
    convert.add_argument("--now", type=_aware, help="date-time for Claim.created and the ids (default: the clock)")
    convert.add_argument(
        "--validation",
        choices=VALIDATION_LEVELS,
        help="fields (the elements read) or full (fhir.resources); default THERACLAIM_VALIDATION",
    )
    add_convert_options(convert)
    add_export_command(commands)
    add_ack_command(commands)
    add_payer_number_command(commands)
    batch = commands.add_parser(
        "batch",
        help="convert many Bundles (NDJSON or a folder) in parallel, streaming",
        description="Write one result Bundle per input record to --out (NDJSON, input order); bad records get "
        "their OperationOutcome and are reported on stderr. Exit 0, 1 (an encounter without a claim) or 2 "
        "(an invalid record).",
    )
    batch.add_argument("input", type=Path, help="NDJSON file (one Bundle per line) or a folder of .json files")
    batch.add_argument(
        "--bulk",
        action="store_true",
        help="the input is a FHIR Bulk Data export folder (NDJSON per resource type): one Bundle per Encounter",
    )
    batch.add_argument("--out", required=True, help="output NDJSON file, or - for stdout")
    batch.add_argument("--workers", type=int, default=default_workers(), help="processes (default: every core)")
    batch.add_argument("--payer", help="payer pack id, overriding the match on the Coverage")
    batch.add_argument("--now", type=_aware, help="date-time for Claim.created and the ids (default: the clock)")
    batch.add_argument("--validation", choices=VALIDATION_LEVELS, help="fields or full")
    bulk_export = commands.add_parser(
        "bulk-export",
        help="download a FHIR Bulk Data export from the source (then: batch --bulk DIR)",
        description="Kick off $export at THERACLAIM_SOURCE_FHIR_BASE, wait for it (honouring Retry-After), "
        "download the NDJSON files into --out with a manifest.json, and delete the job at the source.",
    )
    bulk_export.add_argument("--out", type=Path, required=True, help="folder for the NDJSON files")
    bulk_export.add_argument("--since", type=_since, help="only resources changed since (a date or an instant)")
    bulk_export.add_argument("--group", help="export a Group's patients (Group/<id>/$export) instead of everything")
    subscribe = commands.add_parser(
        "subscribe",
        help="create a topic-based Subscription at the source that notifies this server",
        description="POST a Subscriptions Backport (R4) Subscription to THERACLAIM_SOURCE_FHIR_BASE: rest-hook to "
        "--endpoint (this server's /subscriptions/notify), id-only content.",
    )
    subscribe.add_argument("--topic", required=True, help="canonical URL of the source's SubscriptionTopic")
    subscribe.add_argument("--endpoint", required=True, help="where the source posts: https://…/subscriptions/notify")
    subscribe.add_argument(
        "--filter", default="Encounter?status=finished", help="filter criteria (default: %(default)s)"
    )
    subscribe.add_argument("--heartbeat", type=int, default=3600, help="heartbeat period in seconds")
    subscribe.add_argument("--header", help="an HTTP header the source sends with each notification")
    subscriptions = commands.add_parser(
        "subscriptions",
        help="list the source's Subscriptions and the local queue of pulls",
        description="The Subscriptions at the source (status, topic, endpoint, error) and, from "
        "THERACLAIM_DATABASE_URL, how many queued pulls are in each state.",
    )
    subscriptions.add_argument("--endpoint", help="only the Subscriptions posting to this endpoint")
    serve = commands.add_parser(
        "serve",
        help="run the FHIR REST service (uvicorn)",
        description="Serve the FHIR API on THERACLAIM_DATABASE_URL (default: a SQLite file).",
    )
    serve.add_argument("--host", help="listen address (default: THERACLAIM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: THERACLAIM_PORT or 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default: THERACLAIM_WORKERS or 1)")
    delivery_cli.add_commands(commands)
    clients = commands.add_parser(
        "clients",
        help="check a client registry, or make a key pair to try the API locally",
        description="SMART Backend Services clients (THERACLAIM_CLIENTS).",
    )
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    check = client_commands.add_parser("check", help="validate a registry file and say what each client may do")
    check.add_argument("registry", type=Path, help="YAML or JSON registry file")
    new_key = client_commands.add_parser(
        "new-key", help="print a new private key (JWK) and the registry entry holding its public half"
    )
    new_key.add_argument("--client-id", required=True, help="the client_id to register")
    new_key.add_argument("--alg", choices=("ES384", "RS384"), default="ES384", help="signing algorithm (default ES384)")
    new_key.add_argument("--scope", default="system/Claim.cruds system/DetectedIssue.rs system/Provenance.rs")
    new_key.add_argument("--organization", help="NPI of the billing Organization the client acts for (a tenant)")
    return parser


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(
            [Problem("unreadable-input", f"cannot read {path}: {exc.strerror}", None, "not-found")]
        ) from exc


SHOWN_PROBLEMS = 5


def problems_text(issues: list[dict[str, Any]]) -> str:
    """The first few problems (code, path, message) and how many there are: stdout is often redirected."""
    lines = [f"invalid input: {len(issues)} problem(s)"]
    for issue in issues[:SHOWN_PROBLEMS]:
        code = issue["details"]["coding"][0]["code"]
        where = ", ".join(issue.get("expression", [])) or "(the document)"
        lines.append(f"  {code} at {where}: {issue['details']['text'][:200]}")
    if len(issues) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(issues) - SHOWN_PROBLEMS} more in the OperationOutcome on stdout")
    return "\n".join(lines)


def _summary(result: Result) -> str:
    if result.invalid:
        return problems_text(result.bundle["entry"][0]["resource"]["issue"])
    lines = []
    for outcome in result.outcomes:
        if outcome.status:
            units = ", ".join(f"{cpt} x{units}" for cpt, units in outcome.lines)
            lines.append(f"{outcome.encounter_ref}: Claim {outcome.claim_id} {outcome.status} ({units})")
        else:
            lines.append(f"{outcome.encounter_ref}: no Claim ({', '.join(outcome.findings) or 'nothing billable'})")
    claims = sum(1 for o in result.outcomes if o.status)
    held = sum(1 for o in result.outcomes if o.status == "draft")
    lines.append(f"{len(result.outcomes)} encounter(s): {claims} claim(s), {held} held for review")
    return "\n".join(lines)


def _emit(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def convert(args: argparse.Namespace, settings: Settings) -> int:
    if (args.file is None) == (args.encounter is None):
        print("theraclaim convert: give a FILE or --encounter URL (one of them)", file=sys.stderr)
        return 2
    now = args.now or datetime.now(UTC).replace(microsecond=0)
    try:
        payload: bytes | dict[str, Any] = b"" if args.file is None else _read(args.file)
    except InputError as error:
        result = Result(render_invalid(error, hashlib.sha256(args.file.encode()).hexdigest(), now), (), invalid=True)
    else:
        rules = load_rules(settings.mappings_dir)
        try:
            payload, report = pull_or_fill(settings, rules, payload, args.encounter)
        except SourceProblem as problem:
            print(f"theraclaim convert: {problem}", file=sys.stderr)
            return EXIT_SOURCE_UNAVAILABLE if problem.unavailable else 2
        result = run(
            payload,
            rules=rules,
            now=now,
            payer=args.payer,
            options=settings.claim_options,
            limits=settings.limits,
            validation=args.validation or settings.validation,
        )
        if report is not None:
            result = amend(result, report)
        if args.format == "x12":
            return convert_x12(args, result, rules, now, settings.mappings_dir)
    if args.format == "x12" and result.invalid:
        return convert_x12(args, result, load_rules(settings.mappings_dir), now, settings.mappings_dir)
    _emit(result.bundle)
    print(_summary(result), file=sys.stderr)
    return result.exit_code


class Terminated(Exception):
    """Raised in the main thread by SIGTERM, so ``batch`` stops like on Ctrl-C."""


def _terminate(_signal: int, _frame: object) -> None:
    raise Terminated


INTERRUPTED = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + SIGINT / SIGTERM, as shells report them


def batch(args: argparse.Namespace, settings: Settings) -> int:
    if not args.input.exists():
        print(f"theraclaim batch: {args.input} does not exist", file=sys.stderr)
        return 2
    if args.bulk and not args.input.is_dir():
        print(f"theraclaim batch: --bulk needs the export's folder; {args.input} is not one", file=sys.stderr)
        return 2
    rules = load_rules(settings.mappings_dir)  # fail fast (exit 3) before any worker starts
    if not args.bulk and looks_like_one_document(args.input, settings.max_bytes):
        print(
            f"theraclaim batch: {args.input} is one JSON document over several lines (pretty-printed), not NDJSON "
            f"(one Bundle per line): convert it with `theraclaim convert {args.input}`",
            file=sys.stderr,
        )
        return 2
    job = Job(
        now=args.now or datetime.now(UTC).replace(microsecond=0),
        payer=args.payer,
        options=settings.claim_options,
        limits=settings.limits,
        validation=args.validation or settings.validation,
        mappings_dir=settings.mappings_dir,
    )
    tally = Tally()
    target = None if args.out == "-" else Path(args.out)
    partial = None if target is None else target.with_name(target.name + ".partial")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with ExitStack() as stack:
            records = None
            if args.bulk:  # a Bulk Data export: one Bundle per Encounter, from an on-disk index
                index = stack.enter_context(BulkIndex())
                print(index.load(args.input, sys.stderr).report(), file=sys.stderr)
                records = index.encounter_bundles(observation_codes(rules))
            if target is None or partial is None:
                run_batch(args.input, sys.stdout.buffer, job, args.workers, sys.stderr, tally, records, rules)
            else:
                with partial.open("wb") as out:
                    run_batch(args.input, out, job, args.workers, sys.stderr, tally, records, rules, target.parent)
                os.replace(partial, target)  # OUT appears only complete
    except (KeyboardInterrupt, Terminated) as stop:
        where = f"; what was done is in {partial}" if partial else ""
        print(f"\ntheraclaim batch: interrupted, workers stopped{where}", file=sys.stderr)
        print(tally.report(), file=sys.stderr)
        return INTERRUPTED[type(stop)]
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(tally.report(), file=sys.stderr)
    return tally.exit_code


class SourceCommandFailed(Exception):
    """A source command could not run (the cause is already on stderr); ``code`` is the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _at_source(settings: Settings, command: str, action: Callable[[SourceClient], T]) -> T:
    """Run ``action`` with a client of THERACLAIM_SOURCE_FHIR_BASE; exit 2 when none is set, 4 when it fails."""
    config = source_config(settings)
    if config is None:
        print(f"theraclaim {command}: set THERACLAIM_SOURCE_FHIR_BASE to the source's FHIR base URL", file=sys.stderr)
        raise SourceCommandFailed(2)
    try:
        with SourceClient(config) as client:
            return action(client)
    except SourceError as error:
        print(f"theraclaim {command}: {error.reason}", file=sys.stderr)
        raise SourceCommandFailed(EXIT_SOURCE_UNAVAILABLE) from None


def bulk_export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        done = _at_source(
            settings,
            "bulk-export",
            lambda client: export(client, args.out, since=args.since, group=args.group, progress=sys.stderr),
        )
    except OSError as error:
        print(f"theraclaim bulk-export: cannot write to {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    print(
        f"{done.resources} resources in {len(done.files)} file(s) in {args.out} ({done.errors} error file(s)); "
        f"job {'deleted' if done.deleted else 'left'} at the source; next: theraclaim batch --bulk {args.out}",
        file=sys.stderr,
    )
    return 0


def subscribe(args: argparse.Namespace, settings: Settings) -> int:
    resource = subscription(
        args.topic, args.endpoint, filter_criteria=args.filter, heartbeat=args.heartbeat, header=args.header
    )
    created = _at_source(settings, "subscribe", lambda client: create(client, resource))
    print(f"Subscription/{created.get('id')} {created.get('status')}", file=sys.stderr)
    _emit(created)
    return 0


def subscriptions(args: argparse.Namespace, settings: Settings) -> int:
    rows = _at_source(settings, "subscriptions", lambda client: listed(client, args.endpoint))
    for row in rows:
        failing = f"  error: {row['error']}" if row["error"] else ""
        print(f"Subscription/{row['id']}  {row['status']}  topic {row['topic']}  -> {row['endpoint']}{failing}")
    print(f"{len(rows)} subscription(s) at the source", file=sys.stderr)
    from adapter.service.pull_queue import queue_counts  # the service's modules load only when needed

    counts = queue_counts(settings.database_url)
    if counts is not None:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "empty"
        print(f"queue of pulls: {summary}", file=sys.stderr)
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # the service's dependencies load only when serving

    load_rules(settings.mappings_dir)  # broken rule data: exit 3 with one message, before uvicorn starts

    if args.host:  # the app (and its workers) read the settings again: the MLLP listener defaults to this host
        os.environ["THERACLAIM_HOST"] = args.host
    from adapter.service.accept import LOOP
    from adapter.service.auth.registry import RegistryError, load_registry
    from adapter.service.logs import log_config
    from adapter.service.nodelay import PROTOCOL
    from adapter.service.protection import ProtectionError, check_bind

    host = args.host or settings.host
    try:
        if settings.clients is not None:
            load_registry(settings.clients)  # a bad registry stops the start here, naming the entry and field
        check_bind(host, settings)
    except (RegistryError, ProtectionError) as error:
        print(f"theraclaim serve: {error}", file=sys.stderr)
        return EXIT_BROKEN_DEPLOYMENT
    if settings.clients is None:
        print(
            "theraclaim serve: no client registry (THERACLAIM_CLIENTS): authentication is DISABLED; "
            "serving loopback only, every response says X-Theraclaim-Authentication: disabled",
            file=sys.stderr,
        )
    proxies = settings.trusted_proxies.strip()
    # delivery workers (THERACLAIM_DELIVERY_WORKERS) run on threads of this process, beside uvicorn's
    pool = delivery_cli.start_workers(settings, delivery_cli.checked_destinations(settings))
    # uvicorn restores this handler after its shutdown and then re-raises the SIGTERM it caught: the
    # handler turns that into Terminated, so the delivery workers are closed before the process ends
    previous = signal.signal(signal.SIGTERM, _terminate)
    terminated = False
    try:
        uvicorn.run(
            "adapter.service.api:main_app",
            factory=True,
            host=host,
            port=args.port or settings.port,
            workers=args.workers or settings.workers,
            http=PROTOCOL,  # TCP_NODELAY on every connection, also with several workers
            loop=LOOP,  # one accept per poll: a burst of connections is shared by the workers
            log_config=log_config(),
            access_log=False,  # the guard logs one PHI-free line per request instead
            server_header=False,
            timeout_graceful_shutdown=settings.shutdown_seconds,
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or "",
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_cert_reqs=2 if settings.ssl_ca_certs else 0,  # ssl.CERT_REQUIRED with a client CA, else CERT_NONE
        )
    except Terminated:
        terminated = True
    finally:
        if pool is not None:
            pool.close()  # a worker finishes the batch it leased and records its verdicts
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        signal.raise_signal(signal.SIGTERM)  # end as uvicorn would have: by the signal (143 in a shell)
    return 0


def clients(args: argparse.Namespace, _settings: Settings) -> int:
    from adapter.service.auth.keygen import new_client
    from adapter.service.auth.registry import RegistryError, describe_registry, load_registry

    if args.clients_command == "new-key":
        print(new_client(args.client_id, args.alg, args.scope, args.organization))
        return 0
    try:
        registry = load_registry(args.registry)
    except RegistryError as error:
        print(f"theraclaim clients check: {error}", file=sys.stderr)
        return EXIT_BROKEN_DEPLOYMENT
    print("\n".join(describe_registry(registry)))
    print(f"{len(registry.clients)} client(s): the registry is valid")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
        commands = {
            "convert": convert,
            "batch": batch,
            "bulk-export": bulk_export,
            "subscribe": subscribe,
            "subscriptions": subscriptions,
            "serve": serve,
            "export-837": export_837,
            "read-999": read_999_command,
            "payer-claim-number": payer_number_command,
            "deliver": delivery_cli.deliver,
            "deliveries": delivery_cli.deliveries,
            "clients": clients,
        }
        return commands[args.command](args, settings)
    except SourceCommandFailed as failed:
        return failed.code
    except RuleDataError as error:
        _emit(to_operation_outcome(error))
        print(f"theraclaim: broken rule data: {error}", file=sys.stderr)
        return EXIT_BROKEN_DEPLOYMENT
    except ValidationError as error:
        print(f"theraclaim: invalid THERACLAIM_ settings: {error}", file=sys.stderr)
        return EXIT_BROKEN_DEPLOYMENT
    except DestinationError as error:
        print(f"theraclaim: invalid THERACLAIM_DESTINATIONS: {error}", file=sys.stderr)
        return EXIT_BROKEN_DEPLOYMENT


if __name__ == "__main__":
    sys.exit(main())
