"""Process helpers for the benchmark: start servers, sample the resident memory of a process tree."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from adapter.service.accept import LOOP
from adapter.service.nodelay import PROTOCOL

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(target: str, port: int, workers: int, env: dict[str, str], factory: bool) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        "--http",
        PROTOCOL,  # as `theraclaim serve` runs it: TCP_NODELAY also with several workers
        "--loop",
        LOOP,  # and one accept per poll, so the workers share wrk's connections
    ]
    if factory:
        command.append("--factory")
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found += _tree(int(child))
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[float, float]:
    """A process's own CPU seconds (utime + stime) and its reaped children's (cutime + cstime),
    from /proc/PID/stat (proc(5)); (0, 0) once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / _TICKS_PER_SECOND, (cutime + cstime) / _TICKS_PER_SECOND


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds a process tree has used so far: its live processes' own, plus what the root's
    reaped children used (a uvicorn worker restarted, or a PostgreSQL backend that closed)."""
    own, reaped = _times(pid)
    return own + reaped + sum(_times(p)[0] for p in _tree(pid)[1:])


def postgres_pid() -> int | None:
    """The local PostgreSQL server's postmaster (a ``postgres`` process whose parent is not one),
    or None when no such server runs on this machine (its CPU is then not counted)."""

    def command(pid: str) -> str:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return ""

    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and command(entry.name) == "postgres":
            try:
                parent = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if command(parent) != "postgres":
                return int(entry.name)
    return None


class RssSampler:
    """Peak resident memory of a process tree: the largest single process and the whole tree."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.peak_process_kib = self.peak_tree_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [_rss_kib(p) for p in _tree(self.pid)]
            self.peak_process_kib = max(self.peak_process_kib, max(sizes, default=0))
            self.peak_tree_kib = max(self.peak_tree_kib, sum(sizes))
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def reset_database(database_url: str) -> None:
    """Drop every table of the database so the server under test migrates afresh."""
    from sqlalchemy import create_engine, inspect, text

    from adapter.service.store import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(database_url))
    with engine.begin() as connection:
        for table in inspect(connection).get_table_names():
            connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    engine.dispose()
