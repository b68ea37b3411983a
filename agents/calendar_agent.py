#!/usr/bin/env python3
"""Agent: sync meetings from .ics files, a CalDAV account or Exchange calendars.

Usage: python agents/calendar_agent.py (--ics PATH | --caldav-url URL | --ews-url URL ...)
       [--once | --every 15m] [--db URL]       (options: --help; secrets: OPPKIT_* env)
"""

import sys

import _stops  # noqa: F401  (first: a stop while importing exits cleanly)

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("calendar"))
