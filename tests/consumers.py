"""Where the consumers kit is, for the tests that hand our outputs to their real readers.

The kit (ASTRA-sim binaries, the SGLang / vLLM-Ascend / HCCL / Kubernetes checks, the ns-3 and
SimAI reader harnesses, Slurm) sits beside the checkout at ``../shared/consumers``; the
environment variable ``CMX_CONSUMERS`` names another place.  A test that needs it calls
:func:`kit` (or :func:`kit_file`), which skips the test with the reason when the kit, or the
part it needs, is not there: a checkout without the kit still runs every other test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ROOT", "kit", "kit_file", "run_python"]


def kit() -> Path:
    """The consumers kit's folder; skips the calling test when there is none."""
    given = os.environ.get("CMX_CONSUMERS")
    where = Path(given) if given else ROOT.parent / "shared" / "consumers"
    if not (where / "README.md").is_file():
        pytest.skip(f"the consumers kit is not at {where} (set CMX_CONSUMERS to its folder)")
    return where


def kit_file(relative: str) -> Path:
    """A file of the kit (``checks/hccl/check_hccl_rank_table.py``); skips when missing."""
    path = kit() / relative
    if not path.exists():
        pytest.skip(f"the consumers kit has no {relative}")
    return path


def run_python(script: Path, *args: str | Path, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    """Run a kit script with this interpreter (it has numpy), capturing its output."""
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, check=False)
