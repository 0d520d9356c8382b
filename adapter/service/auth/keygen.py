"""``theraclaim clients new-key``: a key pair and its registry entry, for trying the API locally."""

from __future__ import annotations

import json
from typing import Any

import yaml
from joserfc.jwk import ECKey, RSAKey

from adapter.service.auth.registry import ClientEntry


def new_client(client_id: str, alg: str, scope: str, organization: str | None) -> str:
    kid = f"{client_id}-1"
    parameters: Any = {"kid": kid, "alg": alg, "use": "sig"}
    key: ECKey | RSAKey = (
        ECKey.generate_key("P-384", parameters=parameters)
        if alg == "ES384"
        else RSAKey.generate_key(2048, parameters=parameters)
    )
    entry: dict[str, object] = {"client_id": client_id, "jwks": {"keys": [key.as_dict(private=False)]}, "scope": scope}
    if organization:
        entry["organization"] = organization
    ClientEntry.model_validate(entry)  # what we print must pass `theraclaim clients check`
    private = json.dumps(key.as_dict(private=True))
    registry = yaml.safe_dump({"clients": [entry]}, sort_keys=False)
    return (
        f"# private key of {client_id} (JWK, {alg}): keep it secret, sign client assertions with it\n"
        f"{private}\n\n# registry entry: add it to the file THERACLAIM_CLIENTS names\n{registry}"
    )
