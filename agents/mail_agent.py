#!/usr/bin/env python3
"""Agent: sync emails from mbox / .eml exports, an IMAP mailbox or Exchange mailboxes.

Usage: python agents/mail_agent.py (--mbox PATH | --imap-host HOST | --ews-url URL ...)
       [--once | --every 15m] [--db URL]       (options: --help; secrets: OPPKIT_* env)
"""

import sys

import _stops  # noqa: F401  (first: a stop while importing exits cleanly)

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("mail"))
