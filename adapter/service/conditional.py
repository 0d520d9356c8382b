"""Conditional creates (If-None-Exist, a transaction entry's ifNoneExist) decided in the write transaction.

The door matches the condition early (a match answers without converting anything); the write
transaction serializes on the condition and matches it again, so two concurrent creates with one
condition cannot both miss and both write.  A match that changed meanwhile raises MatchChanged:
the caller redoes its work with the new match (the transaction rolled back).  Two conditions that
are written differently but match the same resource do not serialize on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.engine import Connection

from adapter.service.search import conditional_match
from adapter.service.store import Store, Stored


@dataclass(frozen=True)
class IfNoneExist:
    resource_type: str
    criteria: str
    tenant: str | None
    matched: tuple[str, int] | None = None  # the (id, version) the early match found

    @property
    def lock_key(self) -> str:
        """One key per condition, whatever the order of its parameters."""
        criteria = urlencode(sorted(parse_qsl(self.criteria.lstrip("?"), keep_blank_values=True)))
        return f"if-none-exist:{self.tenant or ''}:{self.resource_type}?{criteria}"


class MatchChanged(Exception):
    """Another writer changed what a condition matches after the early match."""

    def __init__(self, found: dict[IfNoneExist, Stored | None]) -> None:
        super().__init__("a conditional create's match changed")
        self.found = found


def identity(stored: Stored | None) -> tuple[str, int] | None:
    return None if stored is None else (stored.resource["id"], stored.version_id)


def match_again(store: Store, connection: Connection, conditions: Sequence[IfNoneExist]) -> None:
    """In the write transaction, after Store.serialize on the conditions' lock keys: raise
    MatchChanged when a condition no longer matches what the early match found."""
    found = {
        c: conditional_match(store, c.criteria, c.resource_type, c.tenant, connection=connection) for c in conditions
    }
    if any(identity(stored) != c.matched for c, stored in found.items()):
        raise MatchChanged(found)
