"""A parse function for tests/test_parse_ahead.py that kills its worker process on one
input, as a crash in a C library would (imported by the worker, so kept tiny)."""

from __future__ import annotations

import os

from oppkit.sources.mail import parse_message

__all__ = ["parse"]


def parse(raw: bytes, where: str) -> object:
    if raw == b"crash":
        os._exit(3)
    return parse_message(raw, where)
