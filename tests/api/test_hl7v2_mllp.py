"""The HL7 v2 door over a real TCP socket (the MLLP listener the app starts) and over POST /hl7v2.

Each test runs on SQLite and on PostgreSQL (the ``database_url`` fixture).  The peer is a plain
socket (tests/hl7v2/peer.py), so framing faults can be sent byte by byte.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from adapter.rules.catalog import Rules
from adapter.service.hl7v2 import door as door_module
from tests.api.conftest import Api, make_api
from tests.hl7v2.messages import dg1, ft1, in1, message, msh, pid, pv1, visit
from tests.hl7v2.peer import END, START, Peer, errors, fields, frame

ER7 = "x-application/hl7-v2+er7"
Connect = Callable[[Api], Peer]


@pytest.fixture
def door(database_url: str, rules: Rules) -> Iterator[Api]:
    with make_api(database_url, rules, mllp_port=0, mllp_host="127.0.0.1", mllp_max_bytes=64 * 1024) as api:
        yield api


def port_of(api: Api) -> int:
    return int(api.client.app.state.mllp.port)  # type: ignore[attr-defined]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open peers to an app's listener; every one is closed when the test ends."""
    opened: list[Peer] = []

    def open_peer(api: Api) -> Peer:
        opened.append(Peer(port_of(api)))
        return opened[-1]

    yield open_peer
    for peer in opened:
        peer.close()


def count(api: Api, table: str, where: str = "") -> int:
    return len([r for r in api.rows(table) if not where or where in str(r)])


def test_aa_names_the_message_and_swaps_sender_and_receiver(door: Api, connect: Connect) -> None:
    peer = connect(door)
    ack = peer.exchange(visit("CTRL-1"))
    msh_, msa = fields(ack, "MSH"), fields(ack, "MSA")
    assert msa[1] == "AA" and msa[2] == "CTRL-1", ack
    assert "Claim active (97124 x2, 97140 x2)" in msa[3]
    assert (msh_[3], msh_[4], msh_[5], msh_[6]) == ("THERACLAIM", "BILLING", "EHR", "CLINIC^1.2.3.4.5^ISO")
    assert msh_[9] == "ACK^P03^ACK" and msh_[10] and msh_[10] != "CTRL-1" and msh_[12] == "2.5.1"
    (units,) = errors(ack)  # the FT1-10 units the sender computed differ from the rules' units: a warning
    assert units[2] == "FT1^2^10^1" and units[4] == "W" and units[5].startswith("hl7v2-units-differ")
    claims = [r for r in door.rows("resource_current") if r["resource_type"] == "Claim"]
    assert len(claims) == 1 and count(door, "hl7v2_messages") == 1


def test_the_stored_visit_is_found_through_the_rest_api(door: Api, connect: Connect) -> None:
    peer = connect(door)
    assert fields(peer.exchange(visit("CTRL-REST", visit_number="V-REST")), "MSA")[1] == "AA"
    found = door.client.get("/fhir/Encounter", params={"identifier": "urn:oid:1.2.3.4.5|V-REST"}).json()
    assert found["total"] == 1  # PV1-19, its system from PV1-19.4 (CLINIC&1.2.3.4.5&ISO)
    encounter = found["entry"][0]["resource"]
    assert door.client.get("/fhir/Encounter", params={"identifier": "urn:oid:1.2.3.4.5|V-OTHER"}).json()["total"] == 0
    claims = door.client.get("/fhir/Claim", params={"encounter": f"Encounter/{encounter['id']}"}).json()
    assert claims["total"] == 1
    claim = claims["entry"][0]["resource"]
    assert [i["productOrService"]["coding"][0]["code"] for i in claim["item"]] == ["97124", "97140"]
    patient = door.client.get(f"/fhir/{claim['patient']['reference']}").json()
    assert patient["identifier"][0]["value"] == "MRN123"


@pytest.mark.parametrize(
    ("raw", "code", "where"),
    [
        (message(msh("R1").replace("DFT^P03^DFT_P03", "ADT^A01^ADT_A01"), pid()), "200", "MSH^1^9^1^1"),
        (message(msh("R2", event="P01"), pid()), "201", "MSH^1^9^1^2"),
        (message(msh("R3", processing="T"), pid()), "202", "MSH^1^11^1"),
        (message(msh("R4", version="2.9"), pid()), "203", "MSH^1^12^1"),
    ],
    ids=["message-type", "event", "processing-id", "version"],
)
def test_ar_for_what_is_not_supported(door: Api, raw: bytes, code: str, where: str, connect: Connect) -> None:
    peer = connect(door)
    ack = peer.exchange(raw)
    msa, (err,) = fields(ack, "MSA"), errors(ack)
    assert msa[1] == "AR" and msa[2] == raw.split(b"|")[9].decode()
    assert err[2] == where and err[3].startswith(f"{code}^") and err[3].endswith("^HL70357") and err[4] == "E"
    assert count(door, "resource_current") == 0


def test_ae_names_the_field_and_stores_nothing(door: Api, connect: Connect) -> None:
    raw = message(msh("E1"), pid(), pv1(), ft1(1, "97140", "20250114"), dg1(1, "M54.50"), in1())
    ack = connect(door).exchange(raw)
    msa, (err,) = fields(ack, "MSA"), errors(ack)
    assert msa[1] == "AE" and msa[2] == "E1" and "FT1[1]-4" in msa[3]
    assert err[2] == "FT1^1^4^1" and err[3].startswith("101^") and err[5].startswith("missing-performed-period")
    assert count(door, "resource_current") == 0 and count(door, "hl7v2_messages") == 0
    assert count(door, "submissions") == 1  # the refusal is recorded (hashes and codes only)


def test_a_resend_gets_the_same_ack_without_a_second_write(door: Api, connect: Connect) -> None:
    peer = connect(door)
    first = peer.exchange(visit("DUP-1"))
    history = count(door, "resource_history")
    again = peer.exchange(visit("DUP-1").replace(b"\r", b"\r\n"))  # the same segments, other line ends
    assert again == first
    assert count(door, "resource_history") == history and count(door, "hl7v2_messages") == 1
    other = peer.exchange(visit("DUP-1", units=("3", "3")))  # same MSH-10, other content
    msa, (err,) = fields(other, "MSA"), errors(other)
    assert msa[1] == "AE" and msa[2] == "DUP-1"
    assert err[2] == "MSH^1^10^1" and err[3].startswith("205^Duplicate key identifier")
    assert count(door, "resource_history") == history


def test_enhanced_mode_sends_the_accept_then_the_application_acknowledgment(door: Api, connect: Connect) -> None:
    """HL7 v2.5.1 ch. 2.9.3 on one connection: the accept acknowledgment (CA / CR) and then, for a
    message taken, the application acknowledgment (AA / AE) as a message of its own, each as MSH-15 /
    MSH-16 ask; both only after the commit."""
    peer = connect(door)
    peer.send(frame(visit("ENH-1", extra={15: "AL", 16: "AL"}, visit_number="V-E1")))
    first = [peer.ack()]
    assert count(door, "hl7v2_messages") == 1  # committed before the first acknowledgment went out
    first.append(peer.ack())
    assert [fields(ack, "MSA")[1:3] for ack in first] == [["CA", "ENH-1"], ["AA", "ENH-1"]]
    assert fields(first[0], "MSH")[10] != fields(first[1], "MSH")[10]  # two messages, two control ids
    # refused for its content: taken (CA: resending would not help), then AE naming the field
    no_range = ft1(1, "97140", "20250114")  # a timed code without its minutes
    peer.send(frame(message(msh("ENH-2", extra={15: "AL", 16: "AL"}), pid(), pv1(), no_range, dg1(1, "M54.50"), in1())))
    accept, application = peer.ack(), peer.ack()
    assert fields(accept, "MSA")[1:3] == ["CA", "ENH-2"] and errors(accept) == []
    assert fields(application, "MSA")[1:3] == ["AE", "ENH-2"]
    assert [err[2] for err in errors(application)] == ["FT1^1^4^1"]
    # each acknowledgment only when asked: the acknowledgments arrive in this order and no others
    peer.send(frame(visit("ENH-3", extra={15: "AL", 16: "ER"}, visit_number="V-E3")))  # CA; success: no AA
    peer.send(frame(message(msh("ENH-4", version="9.9", extra={15: "AL", 16: "AL"}), pid())))  # CR, no AR
    peer.send(frame(visit("ENH-5", extra={15: "NE", 16: "SU"}, visit_number="V-E5")))  # no CA; AA
    peer.send(frame(visit("ENH-6", extra={15: "ER", 16: "NE"}, visit_number="V-E6")))  # nothing at all
    peer.send(frame(visit("ENH-7", visit_number="V-E7")))  # original mode: AA
    received = [fields(peer.ack(), "MSA")[1:3] for _ in range(4)]
    assert received == [["CA", "ENH-3"], ["CR", "ENH-4"], ["AA", "ENH-5"], ["AA", "ENH-7"]]
    assert count(door, "hl7v2_messages") == 5  # ENH-1, 3, 5, 6, 7
    # a resend gets both acknowledgments again, as they were sent, without a write
    history = count(door, "resource_history")
    peer.send(frame(visit("ENH-1", extra={15: "AL", 16: "AL"}, visit_number="V-E1")))
    assert [peer.ack(), peer.ack()] == first
    assert count(door, "resource_history") == history
    # the sender's acknowledgment of an application acknowledgment is not acknowledged (no ACK loop)
    peer.send(frame(message(msh("SENDER-ACK", extra={9: "ACK^P03^ACK"}), "MSA|AA|TC0123456789ABCDEF01")))
    assert fields(peer.exchange(visit("ENH-8", visit_number="V-E8")), "MSA")[1:3] == ["AA", "ENH-8"]


def test_framing_faults_leave_the_connection_usable(door: Api, connect: Connect) -> None:
    peer = connect(door)
    peer.send(b"garbage before a frame\r\n" + frame(visit("F-1", visit_number="V-F1")) + b"\x00\x01 between")
    assert fields(peer.ack(), "MSA")[1:3] == ["AA", "F-1"]
    peer.send(visit("F-2") + END)  # no start block
    no_start = peer.ack()
    assert fields(no_start, "MSA")[1:3] == ["AR", "F-2"] and "start block" in fields(no_start, "MSA")[3]
    assert errors(no_start)[0][3].startswith("100^")
    peer.send(START + b"MSH|^~\\&|half a message" + frame(visit("F-3", visit_number="V-F3")))  # aborted frame
    assert fields(peer.ack(), "MSA")[1:3] == ["AA", "F-3"]
    big = visit("F-4") + b"NTE|1||" + b"x" * (70 * 1024) + b"\r"
    for start in range(0, len(big), 8192):  # the oversized one arrives in pieces
        peer.send((START if start == 0 else b"") + big[start : start + 8192])
    peer.send(END)
    oversized = peer.ack()
    assert fields(oversized, "MSA")[1:3] == ["AR", "F-4"] and errors(oversized)[0][3].startswith("104^")
    assert fields(peer.exchange(visit("F-5", visit_number="V-F5")), "MSA")[1:3] == ["AA", "F-5"]
    assert count(door, "hl7v2_messages") == 3


def test_idle_and_half_open_connections_are_closed_without_hurting_others(
    database_url: str, rules: Rules, connect: Connect
) -> None:
    with make_api(database_url, rules, mllp_port=0, mllp_host="127.0.0.1", mllp_idle_seconds=0.5) as api:
        idle, half_open = connect(api), connect(api)
        half_open.send(START + visit("H-1")[:40])  # never finished
        busy = connect(api)
        assert fields(busy.exchange(visit("H-2")), "MSA")[1] == "AA"
        assert api.client.get("/healthz").status_code == 200
        assert idle.closed_by_listener() and half_open.closed_by_listener()
        assert count(api, "hl7v2_messages") == 1


def test_hundreds_of_connections_at_once(door: Api, connect: Connect) -> None:
    crowd = [connect(door) for _ in range(300)]
    assert len(crowd) == 300
    assert fields(connect(door).exchange(visit("CROWD")), "MSA")[1] == "AA"
    assert door.client.get("/healthz").status_code == 200


def test_200_messages_over_20_connections_are_acknowledged_and_stored_once(door: Api, connect: Connect) -> None:

    def sender(connection: int) -> list[tuple[str, str]]:
        peer = connect(door)
        answers = []
        for n in range(10):
            control = f"C{connection:02d}-{n}"
            ack = peer.exchange(visit(control, visit_number=f"V-{control}"))
            answers.append((fields(ack, "MSA")[1], fields(ack, "MSA")[2]))
        resend = peer.exchange(visit(f"C{connection:02d}-0", visit_number=f"V-C{connection:02d}-0"))
        answers.append((fields(resend, "MSA")[1], "resend"))
        return answers

    with ThreadPoolExecutor(20) as pool:
        results = [a for answers in pool.map(sender, range(20)) for a in answers]
    assert sorted(code for code, _ in results) == ["AA"] * 220
    assert {control for _, control in results} - {"resend"} == {f"C{c:02d}-{n}" for c in range(20) for n in range(10)}
    claims = [r for r in door.rows("resource_current") if r["resource_type"] == "Claim"]
    # the 200 visits are one patient's on one date at one clinic: the day's one Claim (issue 12), one new
    # version per new visit and none for the resends
    assert len(claims) == 1 and claims[0]["version_id"] == 200
    assert count(door, "hl7v2_messages") == 200


def test_peers_outside_the_allow_list_are_disconnected(database_url: str, rules: Rules, connect: Connect) -> None:
    with make_api(database_url, rules, mllp_port=0, mllp_host="127.0.0.1", mllp_allow="10.0.0.0/8") as api:
        peer = connect(api)
        peer.send(frame(visit("DENIED")))
        assert peer.closed_by_listener()
        assert count(api, "resource_current") == 0


def test_no_message_content_in_the_logs(door: Api, caplog: pytest.LogCaptureFixture, connect: Connect) -> None:
    caplog.set_level(logging.DEBUG)
    peer = connect(door)
    peer.exchange(visit("LOG-1", visit_number="V-LOG"))
    peer.exchange(message(msh("LOG-2"), pid(), pv1("V-LOG2"), ft1(1, "97140", "20250114")))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "hl7v2 AA" in logged and "hl7v2 AE" in logged
    for secret in ("MRN123", "Example", "19500203", "V-LOG", "LOG-1", "Springfield", "1245319599"):
        assert secret not in logged


def test_post_hl7v2_answers_the_ack(door: Api, connect: Connect) -> None:
    response = door.client.post("/hl7v2", content=visit("HTTP-1", visit_number="V-H1"), headers={"Content-Type": ER7})
    assert response.status_code == 200 and response.headers["content-type"].startswith(ER7)
    assert fields(response.text, "MSA")[1:3] == ["AA", "HTTP-1"]
    again = door.client.post("/hl7v2", content=visit("HTTP-1", visit_number="V-H1"), headers={"Content-Type": ER7})
    assert again.text == response.text
    # the MLLP listener and the HTTP door share one ledger
    assert connect(door).exchange(visit("HTTP-1", visit_number="V-H1")) == response.text
    wrong = door.client.post("/hl7v2", content=visit("HTTP-2"), headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415
    silent = door.client.post(
        "/hl7v2", content=visit("HTTP-3", extra={15: "NE", 16: "NE"}), headers={"Content-Type": ER7}
    )
    assert silent.status_code == 204
    both = door.client.post(
        "/hl7v2", content=visit("HTTP-4", extra={15: "AL", 16: "AL"}), headers={"Content-Type": ER7}
    )
    assert fields(both.text, "MSA")[1:3] == ["AA", "HTTP-4"]  # one response: the application acknowledgment


def test_the_listener_runs_beside_a_busy_api(door: Api, connect: Connect) -> None:
    """MLLP traffic and HTTP requests at the same time: neither waits for the other to finish."""
    stop = threading.Event()
    statuses: list[int] = []

    def http() -> None:
        while not stop.is_set():
            statuses.append(door.client.get("/healthz").status_code)

    worker = threading.Thread(target=http)
    worker.start()
    try:
        peer = connect(door)
        answers = [fields(peer.exchange(visit(f"B-{n}", visit_number=f"V-B{n}")), "MSA")[1] for n in range(5)]
    finally:
        stop.set()
        worker.join()
    assert answers == ["AA"] * 5 and statuses and set(statuses) == {200}


def _segments(answer: str, name: str) -> list[list[str]]:
    return [line.split("|") for line in answer.split("\r") if line.startswith(name + "|")]


def test_a_batch_is_answered_with_a_batch_of_acknowledgments(door: Api, connect: Connect) -> None:
    """FHS / BHS (v2.5.1 ch. 2.10.3): each message taken on its own, one response batch in one frame."""
    no_minutes = message(msh("B-2"), pid(), pv1("V-B2"), ft1(1, "97140", "20250114"), dg1(1, "M54.50"), in1())
    messages = [
        visit("B-1", visit_number="V-B1"),
        no_minutes,
        visit("B-3", extra={15: "AL", 16: "AL"}, visit_number="V-B3"),
    ]
    batch = (
        b"FHS|^~\\&|EHR|CLINIC|THERACLAIM|BILLING|20250114||||FILE-9\r"
        b"BHS|^~\\&|EHR|CLINIC|THERACLAIM|BILLING|20250114||||BATCH-7\r" + b"".join(messages) + b"BTS|3\rFTS|1\r"
    )
    peer = connect(door)
    answer = peer.exchange(batch)
    (fhs,), (bhs,) = _segments(answer, "FHS"), _segments(answer, "BHS")
    assert fhs[2:6] == ["THERACLAIM", "BILLING", "EHR", "CLINIC"] and fhs[11] == "FILE-9"
    assert bhs[2:6] == ["THERACLAIM", "BILLING", "EHR", "CLINIC"] and bhs[11] == "BATCH-7" and bhs[9] == ""
    assert [m[1:3] for m in _segments(answer, "MSA")] == [["AA", "B-1"], ["AE", "B-2"], ["CA", "B-3"], ["AA", "B-3"]]
    assert _segments(answer, "BTS") == [["BTS", "4"]] and _segments(answer, "FTS") == [["FTS", "1"]]
    assert answer.startswith("FHS|") and answer.split("\r")[-2] == "FTS|1"
    assert count(door, "hl7v2_messages") == 2  # B-1 and B-3, each committed on its own
    history = count(door, "resource_history")
    again = peer.exchange(batch)  # the whole batch resent: answered from the ledger, nothing written
    assert [m[1:3] for m in _segments(again, "MSA")] == [m[1:3] for m in _segments(answer, "MSA")]
    assert count(door, "resource_history") == history
    short = b"BHS|^~\\&|EHR|CLINIC|||20250114||||BATCH-8\r" + visit("B-4", visit_number="V-B4") + b"BTS|2\r"
    lost = peer.exchange(short)  # a batch without FHS, whose BTS-1 counts a message that is not there
    assert "BTS-1 says 2 messages; 1 were found" in _segments(lost, "BHS")[0][9] and not _segments(lost, "FHS")
    broken = peer.exchange(b"BHS|^~\\&|EHR|CLINIC\rPID|1||MRN123\rBTS|1\r")  # a segment before any MSH
    msa, (err,) = fields(broken, "MSA"), errors(broken)
    assert msa[1] == "AR" and msa[2] == "" and err[3].startswith("100^") and "MRN123" not in broken


def test_a_stopped_post_hl7v2_answers_ar_207_like_mllp(
    database_url: str, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time budget stops a ``POST /hl7v2`` still at work: its answer is the ACK MLLP gives then
    (AR, ERR 207: resend), not an OperationOutcome, and nothing of the message is stored."""
    convert = door_module.convert_message

    def past_the_budget(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)  # no checkpoint in it: the budget's timer answers, not the work
        return convert(*args, **kwargs)

    monkeypatch.setattr(door_module, "convert_message", past_the_budget)
    with make_api(database_url, rules, request_timeout_seconds=0.3) as api:
        response = api.client.post("/hl7v2", content=visit("SLOW-1"), headers={"Content-Type": ER7})
        assert response.status_code == 200 and response.headers["content-type"].startswith(ER7), response.text
        msa, (err,) = fields(response.text, "MSA"), errors(response.text)
        assert msa[1:3] == ["AR", "SLOW-1"] and "resend" in msa[3]
        assert err[3].startswith("207^") and err[4] == "E"
        assert count(api, "resource_current") == 0 and count(api, "hl7v2_messages") == 0
