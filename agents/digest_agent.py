#!/usr/bin/env python3
"""Agent: email each follower a digest of their deals (daily or weekly), once per period.

Usage: python agents/digest_agent.py --frequency daily [--once | --every 15m] [--db URL]
SMTP: OPPKIT_SMTP_HOST, OPPKIT_SMTP_PORT, OPPKIT_SMTP_FROM, OPPKIT_SMTP_USER,
OPPKIT_SMTP_STARTTLS; the password from OPPKIT_SMTP_PASSWORD.
"""

import sys

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("digest"))
