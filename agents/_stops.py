"""Imported first by every agent: a stop while oppkit itself is still importing (pandas,
SQLAlchemy...) exits at once with one line, before anything is written. oppkit.stops
takes over once the agent runs."""

import os
import signal
import sys

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _early(signum, _frame):  # noqa: ANN001, ANN202
    print("oppkit: stopped while starting; nothing was written", file=sys.stderr)
    os._exit(CODES[signum])


for _signum in CODES:
    signal.signal(_signum, _early)
