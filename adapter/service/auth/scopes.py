"""SMART system scopes, v2 (``system/Claim.cruds``) and v1 (``system/Claim.read``), as permission sets.

A scope grants actions on a resource type (``*`` for every type).  The actions are the SMART v2
letters: c create, r read (and vread, history), u update, d delete, s search.  v1 ``read`` means
``rs``, ``write`` means ``cud`` and ``*`` means all five (SMART App Launch 2.x, "Scopes for
requesting FHIR resources").  Context ``patient/`` and ``user/`` scopes do not apply to a backend
service and are never granted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTIONS = "cruds"
ACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
V1_ACTIONS = {"read": "rs", "write": "cud", "*": ACTIONS}
_SCOPE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>[cruds]+|read|write|\*)(?:\?.*)?\Z")


@dataclass(frozen=True, slots=True)
class Scope:
    resource_type: str  # a FHIR type or "*"
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """A system scope, or None for anything else (launch, openid, patient/..., malformed)."""
        match = _SCOPE.match(text)
        if match is None or "?" in text:  # v2 query restrictions are not supported: never widen them
            return None
        perm = match["perm"]
        if perm in V1_ACTIONS:
            actions = V1_ACTIONS[perm]
        elif list(perm) == sorted(set(perm), key=ACTIONS.index):  # v2 letters, each once, in cruds order
            actions = perm
        else:
            return None
        return cls(match["type"], frozenset(actions))

    def allows(self, resource_type: str, action: str) -> bool:
        return action in self.actions and self.resource_type in ("*", resource_type)

    def __str__(self) -> str:
        return f"system/{self.resource_type}.{''.join(a for a in ACTIONS if a in self.actions)}"


@dataclass(frozen=True, slots=True)
class ScopeSet:
    scopes: tuple[Scope, ...]

    @classmethod
    def parse(cls, text: str) -> ScopeSet:
        parsed = (Scope.parse(word) for word in text.split())
        return cls(tuple(s for s in parsed if s is not None))

    def allows(self, resource_type: str, action: str) -> bool:
        return any(s.allows(resource_type, action) for s in self.scopes)

    def grant(self, requested: ScopeSet) -> ScopeSet:
        """What a client asking for ``requested`` gets when it may have ``self``: the intersection,
        scope by scope (``system/*.rs`` asked of a client allowed ``system/Claim.cruds`` is
        ``system/Claim.rs``)."""
        granted: list[Scope] = []
        for asked in requested.scopes:
            for allowed in self.scopes:
                types = (asked.resource_type, allowed.resource_type)
                if "*" not in types and types[0] != types[1]:
                    continue
                resource_type = allowed.resource_type if asked.resource_type == "*" else asked.resource_type
                actions = asked.actions & allowed.actions
                if actions:
                    granted.append(Scope(resource_type, frozenset(actions)))
        return ScopeSet(_merged(granted))

    def __str__(self) -> str:
        return " ".join(str(s) for s in self.scopes)


def _merged(scopes: list[Scope]) -> tuple[Scope, ...]:
    """One scope per resource type, covered ones dropped (system/Claim.rs under system/*.rs)."""
    by_type: dict[str, set[str]] = {}
    for scope in scopes:
        by_type.setdefault(scope.resource_type, set()).update(scope.actions)
    wildcard = by_type.get("*", set())
    merged = []
    for resource_type, actions in sorted(by_type.items()):
        if resource_type != "*" and actions <= wildcard:
            continue
        merged.append(Scope(resource_type, frozenset(actions)))
    return tuple(merged)


def scope_needed(resource_type: str, action: str) -> str:
    """The v2 scope a refusal names, e.g. ``system/Claim.c``."""
    return f"system/{resource_type}.{action}"
