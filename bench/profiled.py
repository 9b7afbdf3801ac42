"""Run a server command under cProfile, profiling only while the harness says so:
SIGUSR1 starts the profiler, SIGUSR2 stops it and writes the statistics to ``PROFILE_OUT``.

``python bench/profiled.py keyrelease serve --port P ...`` (or ``bench/floor_app.py ...``): the
first argument names the program (``keyrelease`` for the service's CLI, else a script path).
The profile stage of bench/run.py uses it when py-spy is not available.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time

#: CPU time of this thread, not wall time: on a shared machine a request preempted by a
#: neighbour would otherwise charge the wait to whatever function was running.
profiler = cProfile.Profile(time.thread_time)


def _start(signum: int, frame: object) -> None:
    profiler.enable()


def _stop(signum: int, frame: object) -> None:
    profiler.disable()
    profiler.dump_stats(os.environ["PROFILE_OUT"])


def main() -> None:
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    program, *args = sys.argv[1:]
    sys.argv = [program, *args]
    if program == "keyrelease":
        from keyrelease.cli import main as cli

        sys.exit(cli(args))
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
