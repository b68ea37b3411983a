"""nbval runs the notebooks against a freshly built demo database.

The notebooks call ``oppkit.connect()``, which reads OPPKIT_DATABASE_URL; the kernel
inherits it from this process, so it is set before the first notebook starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_built: dict[str, str] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if "url" not in _built:
        from oppkit.demo import build_demo

        folder = Path(tempfile.mkdtemp(prefix="oppkit-nbval-"))
        _files, url, _summaries = build_demo(folder, progress=False)
        _built["url"] = url
    os.environ["OPPKIT_DATABASE_URL"] = _built["url"]
    os.environ.setdefault("OPPKIT_INTERNAL_DOMAINS", "northwind.example")
