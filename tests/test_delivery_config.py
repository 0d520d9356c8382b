"""THERACLAIM_DESTINATIONS is validated at start: exit 3 naming the entry and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.cli import main


def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str
) -> tuple[int, str]:
    path = tmp_path / "destinations.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("THERACLAIM_DESTINATIONS", str(path))
    monkeypatch.setenv("THERACLAIM_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    code = main(["deliver"])
    return code, capsys.readouterr().err


GOOD = "- {id: ok, kind: fhir, base: 'http://127.0.0.1:1/fhir'}\n"


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("- {id: billing, kind: fhir, base: 'not a url'}", "destinations[1] (id billing) base:"),
        ("- {id: billing, kind: fhir, base: 'http://x/fhir', method: patch}", "destinations[1] (id billing) method:"),
        ("- {id: billing, kind: fhir, base: 'http://x/fhir', filter: {statuses: [draft]}}", "filter.statuses.0:"),
        ("- {id: billing, kind: fhir, base: 'http://x/fhir', retry: {max_attempts: 0}}", "retry.max_attempts:"),
        ("- {id: billing, kind: fhir, base: 'http://x/fhir', colour: red}", "destinations[1] (id billing) colour:"),
        ("- {id: 'bad id', kind: fhir, base: 'http://x/fhir'}", "destinations[1] (id bad id) id:"),
        ("- {id: billing, kind: ftp}", "destinations[1] (id billing): Input tag 'ftp' found using 'kind'"),
        (
            "- {id: billing, kind: fhir, base: 'http://x/fhir', auth: {kind: smart, token_url: 'http://x/t',"
            " client_id: c, key_file: /nonexistent.jwk}}",
            "destinations[1] (id billing) auth: Value error, key_file /nonexistent.jwk is not a readable file",
        ),
        ("- {id: ok, kind: fhir, base: 'http://x/fhir'}", "destination id 'ok' is used twice"),
        ("- {id: drop, kind: folder, path: /nonexistent}", "destinations[1] (id drop): Value error, path /nonexistent"),
        ("- {id: drop, kind: folder, path: /tmp, auth: {kind: none}}", "destinations[1] (id drop) auth: Extra inputs"),
        (
            "- {id: a, kind: folder, path: /tmp}\n- {id: b, kind: folder, path: /tmp}",
            "at most one destination of kind folder",
        ),
        ("- {id: drop, kind: folder, path: /tmp, profile: nobody}", "destination drop profile: profile 'nobody'"),
        (
            "- {id: slow, kind: fhir, base: 'http://x/fhir', timeout: {connect: 60, read: 100}}",
            "destination slow: twice its timeout connect + read (320 s) must be shorter than THERACLAIM_DELIVERY_LEASE",
        ),
    ],
)
def test_a_bad_destination_exits_3_naming_entry_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], entry: str, named: str
) -> None:
    code, err = run(tmp_path, monkeypatch, capsys, f"destinations:\n{GOOD}{entry}\n")
    assert code == 3
    assert "invalid THERACLAIM_DESTINATIONS" in err
    assert named in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("text", ["destinations: [", "[1, 2]", "destinations: []", ""])
def test_a_file_that_is_not_a_destination_list_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    code, err = run(tmp_path, monkeypatch, capsys, text)
    assert code == 3, err
    assert "invalid THERACLAIM_DESTINATIONS" in err


def test_a_missing_file_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THERACLAIM_DESTINATIONS", str(tmp_path / "absent.yaml"))
    assert main(["deliver"]) == 3
    assert "cannot read it" in capsys.readouterr().err


def test_retry_of_an_unknown_task_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THERACLAIM_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert main(["deliveries", "retry", "no-such-task"]) == 2
    assert "no delivery Task no-such-task" in capsys.readouterr().err
