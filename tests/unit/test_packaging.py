"""Packaging metadata in today's form: the SPDX license string and a setuptools that reads it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression_and_the_build_backend_reads_it() -> None:
    """`license = "Apache-2.0"` (PEP 639), built by a setuptools (>= 77) that accepts that form."""
    with PYPROJECT.open("rb") as fh:
        data = tomllib.load(fh)
    assert data["project"]["license"] == "Apache-2.0"
    setuptools = next(r for r in data["build-system"]["requires"] if r.startswith("setuptools"))
    found = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert found is not None
    assert int(found.group(1)) >= 77
