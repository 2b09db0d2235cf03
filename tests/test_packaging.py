"""Every package of the source tree is listed for installation (a wheel holds only what is listed)."""

from __future__ import annotations

import tomllib

from .helpers import ROOT


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"summarizer." + p.parent.relative_to(ROOT / "summarizer").as_posix().replace("/", ".")
             for p in (ROOT / "summarizer").rglob("__init__.py") if p.parent != ROOT / "summarizer"}
    assert found <= listed, f"not listed in pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
