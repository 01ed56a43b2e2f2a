"""``osism api`` under pyinstrument: ``python -m bench.profiled OUT.txt ARGS...``.

Samples the main thread (the event loop: accept, fan-out, writers) and writes
a text report to OUT.txt when the server is stopped. uvicorn re-raises the
SIGTERM it caught after its shutdown; the handler installed here first is
the one it re-raises to, so the report is written before the process ends.
"""

import os
import signal
import sys
from typing import Any

from pyinstrument import Profiler

from osism.cli.main import main as osism_main


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    profiler = Profiler(interval=0.0005)
    done = False

    def finish(*_: Any) -> None:
        nonlocal done
        if done:
            return
        done = True
        profiler.stop()
        with open(out, "w") as handle:
            handle.write(profiler.output_text(unicode=True, show_all=True))
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    profiler.start()
    try:
        osism_main(args)
    finally:
        finish()


if __name__ == "__main__":
    main()
