"""The benchmark's CPU accounting (bench/procs.py), which puts each HTTP figure next to the CPU
per request that its target leaves: a process tree's CPU counts its live processes and the ones
its root has reaped (a PostgreSQL backend closed during a run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.procs import postgres_pid, tree_cpu_seconds

# A child that uses 0.3 s of its own CPU (process_time, not wall time), then waits for its stdin.
SPIN = "import sys, time\nwhile time.process_time() < 0.3: pass\nprint('spun', flush=True)\nsys.stdin.read()"


def test_a_child_is_counted_while_it_runs_and_after_its_parent_reaped_it() -> None:
    script = (
        "import subprocess, sys\n"
        "pipe = subprocess.PIPE\n"
        f"child = subprocess.Popen([sys.executable, '-c', {SPIN!r}], stdin=pipe, stdout=pipe, text=True)\n"
        "print(child.pid, child.stdout.readline().strip(), flush=True)\n"
        "sys.stdin.readline()\n"  # the test has counted the live child
        "child.stdin.close(); child.wait()\n"
        "print('reaped', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:  # leaving the block closes its pipes (ending it) and waits for it
        assert parent.stdin is not None and parent.stdout is not None
        pid, spun = parent.stdout.readline().split()
        assert spun == "spun" and Path(f"/proc/{pid}").exists()
        live = tree_cpu_seconds(parent.pid)
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "reaped\n" and not Path(f"/proc/{pid}").exists()
        reaped = tree_cpu_seconds(parent.pid)
    assert live >= 0.28 and reaped >= 0.28  # the child's 0.3 s, counted live, then as reaped


def test_the_local_postgresql_server_is_found_by_its_postmaster() -> None:
    pid = postgres_pid()
    assert pid is not None, "the test machine runs PostgreSQL (.ci/run starts it)"
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert children, "a postmaster has its background processes as children"
    assert tree_cpu_seconds(pid) > 0
