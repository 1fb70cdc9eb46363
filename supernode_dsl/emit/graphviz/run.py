"""Running the Graphviz ``dot`` program (``svg`` and ``png``)."""

from __future__ import annotations

import shutil
import subprocess

from supernode_dsl.emit.base import emit_error

__all__ = ["DOT_MISSING", "run_dot"]

#: The E026 message when the ``dot`` program cannot be found on PATH.
DOT_MISSING = "the Graphviz 'dot' program is not installed (Debian: apt-get install graphviz)"

_DOT_TIMEOUT_S = 300


def run_dot(dot: str, fmt: str) -> bytes:
    """Lay out ``dot`` with the Graphviz ``dot`` program, output format ``fmt`` (``svg``,
    ``png``, ``plain``...).  E026 when the program is missing, fails or times out."""
    exe = shutil.which("dot")
    if exe is None:
        raise emit_error(DOT_MISSING)
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"),
                              capture_output=True, timeout=_DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise emit_error(f"Graphviz 'dot -T{fmt}' took more than {_DOT_TIMEOUT_S} s") from err
    except OSError as err:
        raise emit_error(f"cannot run Graphviz 'dot': {err}") from err
    if done.returncode != 0:
        msg = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise emit_error(f"Graphviz 'dot -T{fmt}' failed: {msg[-1] if msg else done.returncode}")
    return done.stdout
