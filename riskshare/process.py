"""Process-wide settings for the commands that move large arrays (PSI, PIR).

Call :func:`tune_for_bulk_arrays` first thing in such a command, before numpy
is imported. It does two things, each only where it applies:

* **One OpenBLAS thread.** Importing numpy starts an OpenBLAS thread per core,
  and those threads spin for a while whenever they are woken. PSI and PIR do
  no floating-point linear algebra, and on a two-core machine shared by both
  parties of a local run every spinning cycle is taken from the protocol.
  An operator's own ``OPENBLAS_NUM_THREADS`` is left as it is.
* **Freed memory stays in the process** (glibc only). glibc gives every freed
  block above 32 MB back to the kernel, which must zero each page again the
  next time one is needed; a protocol run allocates and frees arrays of
  hundreds of MB one after another, and zeroing fresh pages took about a fifth
  of the CPU time of a 2^20 OT-PSI run here. With ``M_MMAP_MAX = 0`` and no
  heap trimming, large blocks come from the heap and freed ones are reused.
  The cost: the process keeps its peak heap until it exits — right for a
  command that runs one job and ends, wrong for a long-lived server, which is
  why the node service does not call this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def tune_for_bulk_arrays() -> None:
    """Apply the settings above (idempotent; silently skipped where they do not apply)."""
    global _done
    if _done:
        return
    _done = True
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
