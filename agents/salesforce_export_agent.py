#!/usr/bin/env python3
"""Agent: sync a Salesforce Data Export folder into the shared database.

Usage: python agents/salesforce_export_agent.py DIR [--once | --every 15m] [--db URL]
"""

import sys

import _stops  # noqa: F401  (first: a stop while importing exits cleanly)

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("salesforce-export"))
