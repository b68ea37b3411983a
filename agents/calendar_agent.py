#!/usr/bin/env python3
"""Agent: sync meetings from .ics calendars into the shared database.

Usage: python agents/calendar_agent.py --ics PATH [--once | --every 15m] [--db URL]
"""

import sys

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("calendar"))
