"""The one place that decides whether the C kernels of ``vigil._speedups`` run.

The extension (``src/vigil/_speedups.c``, built by ``setup.py`` when a C compiler is there) does
three per-event jobs of the detection hot path faster: the keyword text of an event
(``EventContext.string_text``/``text``), the prelowering of a bucket's fields
(``codegen.bucket_function``) and the common shapes of ``normalise.flatten_windows_event``. The
Python code stays the reference: the C functions hand every shape they do not handle back to it,
and ``tests/test_speedups.py`` checks that both give identical results.

Switch: ``VIGIL_PURE_PYTHON=1`` in the environment forces the Python code. It is read once,
when this module is first imported (the modules that use the kernels bind them at import).
``VIGIL_REQUIRE_SPEEDUPS=1`` (set by CI) makes the test suite fail when the build was skipped.
"""

from __future__ import annotations

import os
from types import ModuleType


def load(*, pure: bool | None = None) -> ModuleType | None:
    """The extension module, or None for pure Python (``pure``: default from the environment)."""
    if pure is None:
        pure = os.environ.get("VIGIL_PURE_PYTHON", "") not in ("", "0")
    if pure:
        return None
    try:
        from vigil import _speedups
    except ImportError:  # optional build skipped (no compiler or headers): Python it is
        return None
    return _speedups


#: The kernels in use; None when the Python code runs.
NATIVE: ModuleType | None = load()
