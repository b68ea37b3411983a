"""nbval runs the notebooks against a freshly built demo database.

The notebooks call ``oppkit.connect()``, which reads OPPKIT_DATABASE_URL; the kernel
inherits it from this process, so it is set before the first notebook starts. As under
``oppkit demo``, OPPKIT_DEMO_FILES names the demo's export files (notebook 04 serves their
Salesforce export as the fake org it writes back to).
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
        files, url, _summaries = build_demo(folder, progress=False)
        _built["url"], _built["files"] = url, str(files.root)
    os.environ["OPPKIT_DATABASE_URL"] = _built["url"]
    os.environ["OPPKIT_DEMO_FILES"] = _built["files"]
    os.environ.setdefault("OPPKIT_INTERNAL_DOMAINS", "northwind.example")
