#!/usr/bin/env python3
"""Agent: sync a Salesforce org (REST API, incremental) into the shared database.

Credentials from the environment: OPPKIT_SF_INSTANCE_URL + OPPKIT_SF_SESSION_ID, or
OPPKIT_SF_USERNAME + OPPKIT_SF_PASSWORD + OPPKIT_SF_SECURITY_TOKEN, or a connected app.

Usage: python agents/salesforce_agent.py [--once | --every 15m] [--db URL] [--objects Opportunity,Task]
"""

import sys

import _stops  # noqa: F401  (first: a stop while importing exits cleanly)

from oppkit.cli import agent_main

if __name__ == "__main__":
    sys.exit(agent_main("salesforce"))
