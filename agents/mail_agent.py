#!/usr/bin/env python3
"""Agent: sync emails from mbox / .eml exports into the shared database.

Usage: python agents/mail_agent.py --mbox PATH [--once | --every 15m] [--db URL]
"""

import sys

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("mail"))
