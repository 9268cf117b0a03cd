"""A gatekeeper process for tests that interrupt a blocked ProcessVectorEnv call with a real SIGINT.

``python interrupt_gate.py PID NOTICE_FD GO_FD CONTROL_FD WORKER_FD...``

The test's envs stop at a gate in every reset and step: they write one byte to NOTICE_FD, then
wait for one byte on GO_FD. For each env at its gate this process waits until the test process's
main thread is blocked waiting for the workers (in ``read`` on one of the WORKER_FDs, or in a
``poll``/``select``, as ``recv()``'s ``wait`` does), read from ``/proc/PID/task/PID/syscall``, and
only then opens the gate. So the workers never run ahead of a waiting main process: a call that
returns without waiting (one that takes an earlier call's reply for its own) returns before any
env has moved, every time, and the tests need no sleeps.

A byte ``i`` on CONTROL_FD asks to interrupt the next wait instead: SIGINT is sent to PID while it
is blocked, and the gate stays shut until the test acknowledges with a byte ``a`` on CONTROL_FD
(it has caught the KeyboardInterrupt) and blocks again. Exit status 0 once every env has closed
NOTICE_FD; 3 if the test process did not block within the deadline (its gates are then opened,
so that nothing hangs).
"""
from __future__ import annotations

import ctypes
import os
import platform
import select
import signal
import sys
import time

# Syscall numbers of a blocking read and of the waits multiprocessing.connection.wait() may use
# (x86_64: poll, select, epoll_wait, pselect6, ppoll, epoll_pwait, epoll_pwait2).
SYSCALLS = {
    "x86_64": {"read": 0, "wait": {7, 23, 232, 270, 271, 281, 441}},
    "aarch64": {"read": 63, "wait": {22, 72, 73, 441}},  # epoll_pwait pselect6 ppoll epoll_pwait2
}
# tgkill(2): a signal to one thread. A signal sent to the process (kill) may be delivered to any of
# its threads that does not block it (torch's, or one an earlier test left); that thread's handler
# only sets Python's flag, and the main thread stays blocked in its read, so it must go to the main
# thread itself.
TGKILL = {"x86_64": 234, "aarch64": 131}
DEADLINE_S = 60.0


def supported() -> bool:
    """Whether this machine shows which syscall a blocked thread is in (Linux, x86_64 or aarch64)."""
    if platform.machine() not in SYSCALLS:
        return False
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/syscall") as f:
            f.read()
        return True
    except OSError:
        return False


def blocked_waiting(pid: int, worker_fds: set) -> bool:
    with open(f"/proc/{pid}/task/{pid}/syscall") as f:
        fields = f.read().split()
    if not fields or not fields[0].lstrip("-").isdigit():  # "running"
        return False
    nr = int(fields[0])
    numbers = SYSCALLS[platform.machine()]
    return nr in numbers["wait"] or (nr == numbers["read"] and int(fields[1], 16) in worker_fds)


def interrupt_main_thread(pid: int) -> None:
    """SIGINT to the main thread of ``pid`` (whose thread id is the pid)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL[platform.machine()], pid, pid, signal.SIGINT) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"tgkill({pid}, {pid}, SIGINT): {os.strerror(err)}")


def wait_until_blocked(pid: int, worker_fds: set) -> bool:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if blocked_waiting(pid, worker_fds):
            return True
        time.sleep(0.001)  # polls a condition; no outcome depends on how long this takes
    return False


def main(argv) -> int:
    pid, notice, go, control = (int(a) for a in argv[:4])
    worker_fds = {int(a) for a in argv[4:]}
    while os.read(notice, 1):  # an env is at its gate
        if not wait_until_blocked(pid, worker_fds):
            os.write(go, b"g" * 64)
            return 3
        if select.select([control], [], [], 0)[0]:
            request = os.read(control, 1)
            assert request == b"i", request
            interrupt_main_thread(pid)
            if not select.select([control], [], [], DEADLINE_S)[0]:  # never caught: open up, so nothing hangs
                os.write(go, b"g" * 64)
                return 3
            assert os.read(control, 1) == b"a"  # the test caught it and goes on
            if not wait_until_blocked(pid, worker_fds):
                os.write(go, b"g" * 64)
                return 3
        os.write(go, b"g")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
