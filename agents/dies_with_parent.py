"""Run a command that stops when the process that started it dies, however it dies (even
SIGKILL): ``python -m agents.dies_with_parent PARENT_PID COMMAND [ARG...]``.

On Linux this sets PR_SET_PDEATHSIG (SIGTERM), which survives exec, then execs the command,
so the command keeps this process id. A wrapper rather than ``preexec_fn``: that one is unsafe
in a parent that runs threads. The signal follows the parent *thread* that started the child,
so start children from a thread that lives as long as they should. Elsewhere the command
simply runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            print(f"dies_with_parent: prctl failed: {os.strerror(ctypes.get_errno())}",
                  file=sys.stderr)
            return 1
        if os.getppid() != parent:
            return 1  # the parent died before the guard took hold: nothing to serve
    os.execv(command[0], command)
    return 1  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
