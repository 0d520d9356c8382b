"""837P from the store: export-837 (originals, replacements, voids, nothing twice, --again),
GET /fhir/Claim/{id}/$export-x12, and control numbers across two worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import InputError
from adapter.output.x12 import load_profile
from adapter.output.x12.ack import read_999
from adapter.rules.catalog import Rules
from adapter.service.x12store import X12Store
from tests.api.auth_support import Client, bearer, token_form, write_registry
from tests.api.conftest import Api, assert_outcome, entries, make_api, visit_for
from tests.conftest import NOW, ROOT, shared_path
from tests.x12_support import pyx12_accepts, segments, validate_x12, with_demographics

PROFILE = load_profile()


def _visit(minutes: int = 30, **encounter_args: Any) -> dict[str, Any]:
    return with_demographics(visit_for("enc-1", minutes, **encounter_args))


def _claim_id(api: Api, document: dict[str, Any]) -> str:
    response = api.push(document)
    assert response.status_code in (200, 201), response.text
    return str(entries(response.json(), "Claim")[0]["id"])


def _clm(content: bytes) -> list[list[str]]:
    return [s for s in segments(content) if s[0] in ("CLM", "REF") and s[1] != "6R" and s[1] != "EI"]


def test_export_lifecycle_original_replacement_void(api: Api, rules: Rules, tmp_path: Path) -> None:
    exports = X12Store(api.store, rules)
    claim_id = _claim_id(api, _visit(30))
    first = exports.export(PROFILE, NOW)
    assert first.control_number is not None and first.content is not None
    assert [(p.claim_id, p.version_id, p.frequency) for p in first.sent] == [(claim_id, 1, "1")]
    assert _clm(first.content)[0][5] == "11:B:1"
    assert exports.export(PROFILE, NOW).content is None  # nothing new: a second run exports nothing
    url = api.settings.database_url
    assert _cli(url, "payer-claim-number", claim_id, "PAYER*1").returncode == 2  # a delimiter: refused
    assert _cli(url, "payer-claim-number", "no-such-claim", "PAYER-123").returncode == 2
    done = _cli(url, "payer-claim-number", claim_id, "PAYER-123")  # on the last exported version
    assert done.returncode == 0, done.stderr

    _claim_id(api, _visit(45))  # the visit was corrected: Claim version 2
    second = exports.export(PROFILE, NOW)
    assert second.content is not None and second.control_number == first.control_number + 1
    assert [(p.version_id, p.frequency) for p in second.sent] == [(2, "7")]
    assert _clm(second.content) == [
        ["CLM", _clm(first.content)[0][1], "120", "", "", "11:B:7", "Y", "A", "Y", "Y"],
        ["REF", "F8", "PAYER-123"],
    ]

    response = api.push(_visit(45, status="cancelled"))  # withdrawn: the Claim is cancelled
    assert response.status_code in (200, 201), response.text
    third = exports.export(PROFILE, NOW)
    assert third.content is not None and [(p.version_id, p.frequency) for p in third.sent] == [(3, "8")]
    assert [s[5] for s in _clm(third.content) if s[0] == "CLM"] == ["11:B:8"]
    assert ["REF", "F8", "PAYER-123"] in _clm(third.content)
    assert exports.export(PROFILE, NOW).content is None  # a void is sent once

    files = []
    for i, export in enumerate((first, second, third)):
        assert export.control_number is not None and export.content is not None
        assert exports.again(export.control_number) == export.content  # byte for byte
        files.append(tmp_path / f"{i}.x12")
        files[-1].write_bytes(export.content)
    validate_x12(files)


def test_held_claims_are_never_exported_and_are_listed(api: Api, rules: Rules) -> None:
    exports = X12Store(api.store, rules)
    claim_id = _claim_id(api, _visit(30, status="in-progress"))  # not finished: held (draft)
    export = exports.export(PROFILE, NOW)
    assert export.content is None and export.control_number is None
    assert [(s.claim_id, s.reason) for s in export.skipped] == [(claim_id, "held")]
    cancelled = api.push(_visit(30, status="cancelled"))
    assert cancelled.status_code in (200, 201)
    assert exports.export(PROFILE, NOW).content is None  # cancelled before export: nothing to void


def test_a_claim_the_visit_lacks_837p_data_for_is_reported_not_exported(api: Api, rules: Rules) -> None:
    exports = X12Store(api.store, rules)
    claim_id = _claim_id(api, visit_for("enc-1", 30))  # no tax id, addresses or member id
    export = exports.export(PROFILE, NOW)
    assert export.content is None
    assert [(s.claim_id, s.reason) for s in export.skipped] == [(claim_id, "not-exportable")]
    assert "x12-tax-id" in {p.code for p in export.skipped[0].problems}


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = os.environ | {"THERACLAIM_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "adapter.cli", *args], capture_output=True, cwd=ROOT, env=env, timeout=120, check=False
    )


def test_export_837_command_writes_once_and_again_reproduces(api: Api, tmp_path: Path) -> None:
    _claim_id(api, _visit(30))
    _claim_id(api, _visit(30, status="in-progress"))  # same Encounter: now held
    other = with_demographics(visit_for("enc-2", 23, day="2025-01-10"))  # another day: another Claim
    _claim_id(api, other)
    url = api.settings.database_url
    out = tmp_path / "batch.x12"
    done = _cli(url, "export-837", "--out", str(out), "--now", "2025-01-15T12:00:00Z")
    assert done.returncode == 0, done.stderr
    assert b"held for review" in done.stderr and b"original" in done.stderr
    content = out.read_bytes()
    assert segments(content)[0][15] == "T"  # ISA15 from the profile
    assert len([s for s in segments(content) if s[0] == "CLM"]) == 1  # enc-1 is held now; enc-2 goes
    again_out = tmp_path / "nothing.x12"
    done = _cli(url, "export-837", "--out", str(again_out))
    assert done.returncode == 0 and b"nothing new" in done.stderr and not again_out.exists()
    isa13 = next(s for s in segments(content) if s[0] == "IEA")[2]
    copy = tmp_path / "copy.x12"
    done = _cli(url, "export-837", "--out", str(copy), "--again", str(int(isa13)))
    assert done.returncode == 0 and copy.read_bytes() == content
    assert _cli(url, "export-837", "--out", str(copy), "--again", "999999").returncode == 2
    validate_x12([out])


def test_export_x12_operation(api: Api) -> None:
    claim_id = _claim_id(api, _visit(30))
    response = api.client.get(f"/fhir/Claim/{claim_id}/$export-x12", headers={"Accept": "application/EDI-X12"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/EDI-X12")
    assert [s[5] for s in segments(response.content) if s[0] == "CLM"] == ["11:B:1"]
    again = api.client.get(f"/fhir/Claim/{claim_id}/$export-x12")
    assert segments(again.content)[0][13] != segments(response.content)[0][13]  # a fresh ISA13 each time
    held = _claim_id(api, with_demographics(visit_for("enc-2", 30, status="in-progress", day="2025-01-10")))
    body = assert_outcome(api.client.get(f"/fhir/Claim/{held}/$export-x12"), 409)
    assert body["issue"][0]["details"]["coding"][0]["code"] == "held"
    assert_outcome(api.client.get("/fhir/Claim/unknown/$export-x12"), 404)
    assert_outcome(api.client.get(f"/fhir/Claim/{claim_id}/$export-x12?profile=nope"), 400)
    assert_outcome(api.client.get(f"/fhir/Claim/{claim_id}/$export-x12", headers={"Accept": "text/html"}), 406)


WORKER = """
import sys
from adapter.rules.catalog import load_rules
from adapter.service.store import Store
from adapter.service.x12store import X12Store
exports = X12Store(Store(sys.argv[1]), load_rules())
for _ in range(int(sys.argv[2])):
    with exports.store.transaction() as connection:
        envelope = exports.allocate(connection, 2)
    print(envelope.interchange, envelope.group, *envelope.transactions, flush=True)
"""


def test_control_numbers_are_unique_and_increasing_across_two_worker_processes(api: Api) -> None:
    rounds = 25
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, api.settings.database_url, str(rounds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    per_worker = [[list(map(int, line.split())) for line in o[0].decode().splitlines()] for o in outputs]
    interchanges = [row[0] for rows in per_worker for row in rows]
    transactions = [n for rows in per_worker for row in rows for n in row[2:]]
    assert sorted(interchanges) == list(range(1, 2 * rounds + 1))  # unique, no gaps
    assert sorted(transactions) == list(range(1, 4 * rounds + 1))
    for rows in per_worker:  # each worker sees them increase
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def export_numbers(export: Any) -> list[int]:
    return [int(s[2]) for s in segments(export.content) if s[0] == "ST"]


def test_a_999_is_recorded_per_transaction_set(api: Api, rules: Rules, tmp_path: Path) -> None:
    exports = X12Store(api.store, rules)
    first_claim = _claim_id(api, _visit(30))
    second_claim = _claim_id(api, with_demographics(visit_for("enc-2", 23, day="2025-01-10")))
    export = exports.export(PROFILE, NOW)
    assert export.content is not None and len(export.sent) == 2
    sent = tmp_path / "sent.x12"
    sent.write_bytes(export.content)
    ok, ack = pyx12_accepts(sent)  # pyx12 writes the 999 a clearinghouse would answer
    assert ok and ack.count("IK5*A") == 2
    assert [a.transaction for a in read_999(ack.encode())] == [p for p in export_numbers(export)]
    head, tail = ack.rsplit("IK5*A", 1)  # the payer rejects the second Claim
    rejected = f"{head}IK5*R{tail}"
    answered = exports.record_acknowledgments(read_999(rejected.encode()))
    assert [(a.code, claim) for a, claim in answered] == [("A", first_claim), ("R", second_claim)]
    rows = {r["claim_id"]: r["acknowledgment"] for r in api.rows("x12_exports")}
    assert rows == {first_claim: "A", second_claim: "R"}
    foreign = shared_path("external", "x12-837p-imsweb", "x12_999_rejected.txt").read_bytes()
    assert [claim for _, claim in exports.record_acknowledgments(read_999(foreign))] == [None]
    with pytest.raises(InputError):
        read_999(export.content)  # an 837 is not a 999


EXPORTER = """
import sys
from datetime import UTC, datetime
from adapter.output.x12 import load_profile
from adapter.rules.catalog import load_rules
from adapter.service.store import Store
from adapter.service.x12store import X12Store
export = X12Store(Store(sys.argv[1]), load_rules()).export(load_profile(), datetime.now(UTC))
print(export.control_number, *(f"{p.claim_id}/{p.version_id}" for p in export.sent), flush=True)
"""


def test_two_exporters_at_once_send_every_claim_version_once(api: Api) -> None:
    claims = {
        _claim_id(api, with_demographics(visit_for(f"enc-{i}", 20 + i, day=f"2025-01-{8 + i:02d}"))) for i in range(6)
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORTER, api.settings.database_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    lines = [o[0].decode().split() for o in outputs]
    sent = [item for line in lines for item in line[1:]]
    assert sorted(sent) == sorted(f"{c}/1" for c in claims)  # each exactly once
    numbers = [line[0] for line in lines if line[0] != "None"]
    assert len(numbers) == len(set(numbers)) >= 1


def test_since_limits_the_export_to_claim_versions_recorded_from_that_date(api: Api, rules: Rules) -> None:
    exports = X12Store(api.store, rules)
    claim_id = _claim_id(api, _visit(30))
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert exports.export(PROFILE, NOW, since=tomorrow).content is None
    export = exports.export(PROFILE, NOW, since=tomorrow - timedelta(days=1))
    assert [p.claim_id for p in export.sent] == [claim_id]


def test_export_x12_follows_the_claims_read_rules_scope_and_tenant(
    database_url: str, rules: Rules, tmp_path: Path
) -> None:
    """Same policy as reading the Claim: anonymous 401, no Claim.r 403, another tenant 404."""
    owner, other, no_claims = Client.new("clinic-a"), Client.new("clinic-b"), Client.new("patients-only")
    registry = write_registry(
        tmp_path / "clients.yaml",
        [
            owner.entry("system/*.cruds", "1234567893"),  # the visit's billing Organization
            other.entry("system/*.cruds", "1245319599"),
            no_claims.entry("system/Patient.r", "1234567893"),
        ],
    )
    with make_api(database_url, rules, clients=registry) as secured:
        token_url = "http://testserver/auth/token"

        def token(client: Client, scope: str) -> dict[str, str]:
            answer = secured.client.post(token_url, data=token_form(client.assertion(token_url), scope))
            assert answer.status_code == 200, answer.text
            return bearer(str(answer.json()["access_token"]))

        mine = token(owner, "system/*.cruds")
        pushed = secured.push(_visit(30), headers=mine)
        assert pushed.status_code == 201, pushed.text
        claim_id = entries(pushed.json(), "Claim")[0]["id"]
        path = f"/fhir/Claim/{claim_id}/$export-x12"
        assert secured.client.get(path, headers=mine).status_code == 200
        assert_outcome(secured.client.get(path), 401)
        assert_outcome(secured.client.get(path, headers=token(no_claims, "system/Patient.r")), 403)
        assert_outcome(secured.client.get(path, headers=token(other, "system/*.cruds")), 404)
