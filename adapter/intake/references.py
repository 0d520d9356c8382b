"""Resolve references inside a Bundle: by fullUrl, by ``Type/id`` and by ``urn:uuid:``.

R4 bundle resolution (Bundle §3.1.3.4): a relative reference ``Type/id`` matches an entry whose
resource has that type and id (or whose absolute fullUrl ends with it); an absolute or
``urn:uuid:`` reference matches the fullUrl exactly.  ``#id`` points into the referring
resource's ``contained`` list.  Version-specific references drop their ``/_history/n``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from adapter.errors import Problem

_HISTORY = re.compile(r"/_history/[^/]+\Z")
_TAIL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})\Z")


class Entry:
    """One entry's resource, with what intake asks of it many times, computed once.

    A plain class with Final attributes (read-only for mypy): a frozen dataclass's ``__init__``
    cost ~16K instructions per entry, more than reading most resources.
    """

    __slots__ = ("full_url", "index", "path", "ref", "resource", "resource_type")

    def __init__(self, index: int, full_url: str | None, resource: dict[str, Any]) -> None:
        self.index: Final = index
        self.full_url: Final = full_url
        self.resource: Final = resource
        self.resource_type: Final = str(resource["resourceType"])
        self.path: Final = f"Bundle.entry[{index}].resource"
        self.ref: Final = self._reference()

    def _reference(self) -> str:
        """How output resources refer to this one: ``Type/id`` when it has an id, else its fullUrl."""
        if self.full_url and self.full_url.startswith("#"):
            return self.full_url  # a contained resource has no identity outside its holder
        rid = self.resource.get("id")
        if rid:
            return f"{self.resource_type}/{rid}"
        return self.full_url or f"{self.resource_type}/entry-{self.index}"


class BundleIndex:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self._by_key: dict[str, Entry] = {}
        self._by_type: dict[str, list[Entry]] = {}
        for entry in entries:
            self._by_type.setdefault(entry.resource_type, []).append(entry)
            full_url = entry.full_url
            if full_url:
                self._by_key.setdefault(full_url, entry)
                tail = None if full_url.startswith("urn:") else _TAIL.search(full_url)
                if tail:
                    self._by_key.setdefault(tail.group(1), entry)
            if entry.resource.get("id"):
                self._by_key.setdefault(f"{entry.resource_type}/{entry.resource['id']}", entry)

    def of_type(self, resource_type: str) -> list[Entry]:
        return list(self._by_type.get(resource_type, ()))

    def lookup(self, reference: str) -> Entry | None:
        if "/_history/" in reference:
            reference = _HISTORY.sub("", reference)
        found = self._by_key.get(reference)
        if found is None and not reference.startswith("urn:"):
            tail = _TAIL.search(reference)
            found = self._by_key.get(tail.group(1)) if tail else None
        return found

    def resolve(
        self, holder: Entry, reference: Any, path: str, expected: tuple[str, ...], problems: list[Problem]
    ) -> Entry | None:
        """The entry a Reference points to, or None with a problem recorded.

        ``expected`` lists the resource types the element allows; a resolved resource of another
        type is a problem as well.  A Reference without ``reference`` (identifier or display only)
        resolves to None without a problem: it is a logical reference, not a broken one.
        """
        target = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(target, str):
            return None
        found = _contained(holder, target[1:]) if target.startswith("#") else self.lookup(target)
        if found is None:
            problems.append(
                Problem(
                    "unresolved-reference",
                    f"reference {target!r} does not resolve inside the Bundle",
                    f"{path}.reference",
                    "not-found",
                )
            )
            return None
        if found.resource_type not in expected:
            problems.append(
                Problem(
                    "wrong-reference-type",
                    f"reference {target!r} is a {found.resource_type}; expected {' or '.join(expected)}",
                    f"{path}.reference",
                    "invalid",
                )
            )
            return None
        return found


def _contained(holder: Entry, local_id: str) -> Entry | None:
    for resource in holder.resource.get("contained", []):
        if resource.get("id") == local_id:
            return Entry(holder.index, f"#{local_id}", resource)
    return None


def unresolved_urns(entry: Entry, full_urls: set[str]) -> list[Problem]:
    """Every ``urn:uuid:`` / ``urn:oid:`` reference of an entry's resource that names no entry.

    R4 Bundle §3.1.3.4: such a reference has no meaning outside the Bundle, so it SHALL resolve to
    an entry's fullUrl; one that does not is broken, whatever element holds it.
    """
    problems = []
    stack: list[tuple[str, Any]] = [(entry.path, entry.resource)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            target = node.get("reference")
            if isinstance(target, str) and target.startswith(("urn:uuid:", "urn:oid:")) and target not in full_urls:
                problems.append(
                    Problem(
                        "unresolved-reference",
                        f"reference {target[:80]!r} names no entry of the Bundle (a urn: reference must)",
                        f"{where}.reference",
                        "not-found",
                    )
                )
            stack += [(f"{where}.{key}", value) for key, value in node.items() if isinstance(value, dict | list)]
        elif isinstance(node, list):
            stack += [(f"{where}[{i}]", value) for i, value in enumerate(node) if isinstance(value, dict | list)]
    return sorted(problems, key=lambda p: p.expression or "")
