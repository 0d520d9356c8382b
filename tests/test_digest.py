"""The project's hashes: canonical JSON digests and the name-based UUIDs of the output's ids."""

from __future__ import annotations

import random
import uuid

from adapter.digest import canonical_digest, name_uuid


def test_name_uuid_is_uuid5() -> None:
    """Every output id was uuid.uuid5 before: the same string for any namespace and name (ASCII,
    any Unicode, empty, long), so ids stay what earlier versions gave."""
    generator = random.Random(17)
    alphabet = "abcXYZ019|:/-_ éßü漢字🩺\u0000"
    for _ in range(5000):
        namespace = uuid.UUID(int=generator.getrandbits(128))
        name = "".join(generator.choice(alphabet) for _ in range(generator.randrange(0, 120)))
        assert name_uuid(namespace.bytes, name) == str(uuid.uuid5(namespace, name)), (namespace, name)


def test_canonical_digest_ignores_key_order() -> None:
    document = {"a": 1, "b": [1, {"c": 2, "d": 3}]}
    assert canonical_digest(document) == canonical_digest({"b": [1, {"d": 3, "c": 2}], "a": 1})
    assert canonical_digest({"a": 1}) != canonical_digest({"a": 2})
