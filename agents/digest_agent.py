#!/usr/bin/env python3
"""Agent: email each follower a digest of their deals (daily or weekly), once per period.

Usage: python agents/digest_agent.py --frequency daily [--once | --every 15m] [--db URL]
SMTP: [smtp] in oppkit.toml or OPPKIT_SMTP_HOST, _PORT, _FROM, _USER, _STARTTLS, _CA_FILE
(587 with STARTTLS by default; see oppkit.mailout); the password from OPPKIT_SMTP_PASSWORD.
"""

import sys

import _stops  # noqa: F401  (first: a stop while importing exits cleanly)

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("digest"))
