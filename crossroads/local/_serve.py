"""Child entry point of a managed model server: ``python -m crossroads.local._serve ARGS``.

Runs ``llama_cpp.server`` with ARGS, with crossroads' chat formats registered, after asking Linux to send SIGTERM to this process
when the crossroads process that started it dies, so a crashed or SIGKILLed gateway does
not leave model servers behind. The parent must start it from a thread that lives as
long as the server (the event-loop thread): the signal follows the parent *thread*.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

PARENT_PID_ENV = "CROSSROADS_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    expected = os.environ.get(PARENT_PID_ENV)
    if expected and str(os.getppid()) != expected:
        sys.exit(0)  # the parent died before prctl took effect


def main() -> None:
    """Run ``llama_cpp.server`` with this process's arguments."""
    _die_with_parent()
    from crossroads.local.transcript import register_with_llama_cpp

    register_with_llama_cpp()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
