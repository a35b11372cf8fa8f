"""The package layering: ase_distill imports neither other package; training never imports
md_validation at import time; the CLI imports a sub-command's module only when it runs."""

import subprocess
import sys

import pytest

CHECK = """
import importlib, pkgutil, sys
import {package}
for m in pkgutil.walk_packages({package}.__path__, "{package}."):
    importlib.import_module(m.name)
importlib.import_module("{extra}") if "{extra}" else None
bad = sorted(n for n in sys.modules if n.split(".")[0] in {forbidden})
print(bad)
"""


@pytest.mark.parametrize(
    "package, extra, forbidden",
    [
        ("ase_distill", "", ("training", "md_validation")),
        ("training", "", ("md_validation",)),
    ],
)
def test_import_layering(package, extra, forbidden):
    code = CHECK.format(package=package, extra=extra, forbidden=forbidden)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_cli_imports_validate_only_when_it_runs():
    code = (
        "import sys; from training.cli import build_parser; build_parser('train');"
        "print('md_validation' in {n.split('.')[0] for n in sys.modules})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
