"""The examples run (short settings), as a user would run them."""

import subprocess
import sys
from pathlib import Path

import pytest

from ase_distill.registry import shipped_students

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_distill_emt_example(tmp_path):
    out = _run(
        ["examples/distill_emt.py", "--output", str(tmp_path / "emt"), "--epochs", "3"], tmp_path
    )
    assert "from_checkpoint" in out


@pytest.mark.skipif("tiny" not in shipped_students(), reason="needs the shipped tiny student")
def test_demo_example(tmp_path):
    out = _run(
        [
            "examples/md_tiny.py",
            "--steps",
            "100",
            "--validate-ps",
            "0.02",
            "--output",
            str(tmp_path / "demo"),
            "--water-frames",
            "1",
        ],
        tmp_path,
    )
    assert "report:" in out
    assert "water-tiny vs SevenNet-0" in out
    assert (tmp_path / "demo" / "aspirin_tiny" / "report.md").is_file()
