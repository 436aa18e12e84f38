"""Process identity from /proc, against real processes: this one, a child, a zombie, a gone one."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from chaosgenesys import processes


def test_this_process_is_alive_with_its_start_time_and_not_with_another() -> None:
    me = os.getpid()
    found = processes.stat(me)
    assert found is not None and found.ppid == os.getppid() and found.pgrp == os.getpgrp()
    assert found.start == processes.start_time(me)
    assert processes.alive(me) and processes.alive(me, found.start)
    assert not processes.alive(me, found.start + 1)  # a reused pid is another process


def test_a_record_from_before_the_last_boot_names_no_live_process() -> None:
    booted = processes.boot_time()
    assert booted is not None and booted < time.time()
    me = os.getpid()
    assert processes.alive(me, processes.start_time(me), created_at=time.time())
    assert not processes.alive(me, processes.start_time(me), created_at=booted - 1)


def test_a_zombie_is_dead_and_a_reaped_child_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while (found := processes.stat(child.pid)) is not None and not found.dead:
        assert time.monotonic() < deadline, found
        time.sleep(0.01)
    assert found is not None and found.state == "Z"  # exited, not reaped yet
    assert not processes.alive(child.pid)
    child.wait()
    assert processes.stat(child.pid) is None and processes.start_time(child.pid) is None
    assert not processes.alive(child.pid)
    assert not processes.alive(0) and not processes.alive(-1)


def test_ancestry_goes_up_to_init_parent_first() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        chain = processes.ancestry(child.pid)
        assert chain[0] == (os.getpid(), processes.start_time(os.getpid()))
        assert chain[1][0] == os.getppid()
        assert chain[-1][0] == 1 or processes.stat(chain[-1][0]) is not None
        assert len({pid for pid, _ in chain}) == len(chain)
    finally:
        child.kill()
        child.wait()
    assert processes.ancestry(child.pid) == []  # gone: nothing above it to tell
