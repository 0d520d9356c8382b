"""The delivery commands: ``theraclaim deliver`` (workers alone) and ``theraclaim deliveries retry``.

The database modules load only when a command needs them (``convert`` and ``batch`` stay light).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from adapter.errors import RuleDataError
from adapter.output.x12 import load_profile
from adapter.service.delivery.config import DestinationError, Destinations, load_destinations
from adapter.service.settings import Settings

if TYPE_CHECKING:
    from adapter.service.delivery.worker import Pool


def add_commands(commands: Any) -> None:
    deliver = commands.add_parser(
        "deliver",
        help="run delivery workers alone (no HTTP service)",
        description="Send the outbox's deliveries to THERACLAIM_DESTINATIONS until stopped (SIGTERM or Ctrl-C).",
    )
    deliver.add_argument("--workers", type=int, help="workers (default: THERACLAIM_DELIVERY_WORKERS or 1)")
    deliveries = commands.add_parser("deliveries", help="inspect and resend deliveries")
    actions = deliveries.add_subparsers(dest="action", required=True)
    retry = actions.add_parser("retry", help="send a failed delivery (a dead letter) again")
    retry.add_argument("task_id", metavar="TASK-ID", help="the id of the delivery's Task")


def checked_destinations(settings: Settings) -> Destinations | None:
    """The destinations file, checked: DestinationError names the entry and field (exit 3)."""
    destinations = load_destinations(settings.destinations)
    if destinations is not None:
        for folder in destinations.folders:
            try:
                load_profile(folder.profile, settings.mappings_dir)
            except RuleDataError as error:
                raise DestinationError(f"{settings.destinations}: destination {folder.id} profile: {error}") from error
        for destination in destinations.fhir:
            longest = 2 * (destination.timeout.connect + destination.timeout.read)  # a token, then the send
            if longest >= settings.delivery_lease_seconds:
                raise DestinationError(
                    f"{settings.destinations}: destination {destination.id}: twice its timeout connect + read "
                    f"({longest:g} s) must be shorter than THERACLAIM_DELIVERY_LEASE_SECONDS "
                    f"({settings.delivery_lease_seconds:g} s)"
                )
    return destinations


def start_workers(settings: Settings, destinations: Destinations | None, wanted: int | None = None) -> Pool | None:
    """The delivery workers a process runs (None when there are none)."""
    if destinations is None:
        return None
    from adapter.service.delivery.worker import Pool, worker_count
    from adapter.service.store import Store

    store = Store(settings.database_url)
    count = worker_count(
        settings.model_copy(update={"delivery_workers": wanted}) if wanted else settings, destinations, store.dialect
    )
    if count == 0:
        return None
    pool = Pool(store, destinations, settings, count)
    pool.start()
    return pool


def deliver(args: argparse.Namespace, settings: Settings) -> int:
    destinations = checked_destinations(settings)
    if destinations is None:
        print("theraclaim deliver: THERACLAIM_DESTINATIONS is not set: there is nowhere to deliver", file=sys.stderr)
        return 2
    # one line per attempt: Task id, destination, attempt, verdict (never Claim content)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pid=%(process)d %(name)s %(levelname)s %(message)s")
    stopped = threading.Event()

    def _stop(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    pool = start_workers(settings, destinations, args.workers)
    if pool is None:
        print("theraclaim deliver: 0 workers (THERACLAIM_DELIVERY_WORKERS=0)", file=sys.stderr)
        return 0
    print(f"theraclaim deliver: {len(pool.threads)} worker(s)", file=sys.stderr)
    stopped.wait()
    pool.close()
    return 0


def deliveries(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import OperationalError

    from adapter.service.delivery import outbox
    from adapter.service.migrate import upgrade
    from adapter.service.store import Store

    store = Store(settings.database_url)
    try:
        upgrade(store)
        row = outbox.retry(store, args.task_id)
    except OperationalError as error:
        print(
            f"theraclaim deliveries retry: the database cannot be reached ({type(error.orig).__name__})",
            file=sys.stderr,
        )
        return 3
    except outbox.RetryRefused as refused:
        print(f"theraclaim deliveries retry: {refused}", file=sys.stderr)
        return 1
    if row is None:
        print(f"theraclaim deliveries retry: no delivery Task {args.task_id}", file=sys.stderr)
        return 2
    print(
        f"Task/{row['task_id']}: requested again (Claim/{row['claim_id']}/_history/{row['claim_version']} "
        f"to {row['destination']})",
        file=sys.stderr,
    )
    return 0
