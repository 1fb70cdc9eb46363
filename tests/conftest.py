"""Shared test configuration: the golden-file switch and the fuzz suite's length.

Regenerate every golden file (all stages, all fixtures) with ONE switch::

    pytest --regen-golden                 # every golden test (parse ... emit)
    CMX_REGEN_GOLDEN=1 pytest tests/test_golden.py tests/test_golden_outputs.py

Without it, a golden test compares the produced text byte for byte with the stored file
under ``tests/golden/`` and fails with a diff on any change.

The fuzz properties (``tests/fuzz/``, marker ``fuzz``) run a few examples each by default;
a long run sets the count of every one (docs/fuzzing.md)::

    pytest -m fuzz tests/fuzz --fuzz-examples 2000     # or CMX_FUZZ_EXAMPLES=2000
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-readme",
        action="store_true",
        default=False,
        help="also run every command of README.md as written (about a minute; "
        "same as CMX_README=1)",
    )
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ instead of comparing with them "
        "(same as CMX_REGEN_GOLDEN=1)",
    )
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        metavar="N",
        help="examples per fuzz property in tests/fuzz/ (same as CMX_FUZZ_EXAMPLES=N; "
        "default: a few each, so the suite stays fast)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: a fuzz property of tests/fuzz/ (docs/fuzzing.md)")
    count = config.getoption("--fuzz-examples")
    if count is not None:
        if count < 1:
            raise pytest.UsageError("--fuzz-examples needs a count >= 1")
        os.environ["CMX_FUZZ_EXAMPLES"] = str(count)  # read when tests/fuzz/ is collected


def regen_requested(config: pytest.Config) -> bool:
    """True when goldens are to be rewritten (option or environment variable)."""
    env = os.environ.get("CMX_REGEN_GOLDEN", "").strip().lower()
    return bool(config.getoption("--regen-golden")) or env in ("1", "true", "yes")


class Golden:
    """Compares text with ``tests/golden/<name>``, or rewrites it in regeneration mode."""

    def __init__(self, regen: bool) -> None:
        self.regen = regen

    def check(self, name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if self.regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            # newline="" (no translation): the file holds exactly these bytes on every OS.
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            return
        if not path.is_file():
            pytest.fail(f"golden file {name} is missing; run pytest with --regen-golden "
                        "(or CMX_REGEN_GOLDEN=1) to create it")
        expected = path.read_bytes().decode("utf-8")
        if expected != text:
            diff = "".join(difflib.unified_diff(
                expected.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"golden/{name}", tofile="produced", n=2))
            if len(diff) > 6000:
                diff = diff[:6000] + "\n... (diff truncated)\n"
            pytest.fail(f"output differs from golden/{name} (rerun with --regen-golden if the "
                        f"change is intended):\n{diff}")


@pytest.fixture(scope="session")
def golden(request: pytest.FixtureRequest) -> Golden:
    """The golden-file checker, in compare or regenerate mode."""
    return Golden(regen_requested(request.config))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/fuzz/ carries the ``fuzz`` marker (``-m fuzz`` selects them)."""
    fuzz_dir = Path(__file__).resolve().parent / "fuzz"
    for item in items:
        if fuzz_dir in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.fuzz)
