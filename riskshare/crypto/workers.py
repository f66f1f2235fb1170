"""Thread pools for the bulk crypto code, one per purpose, as many threads as cores.

libsodium (through ctypes or cffi) and numpy release the GIL during their
calls, so a plain thread pool keeps every core busy without the cost of
processes. (OpenSSL through ``cryptography`` — AES, X25519 — holds it: two
threads take as long as one, measured.) A pool is created on first use and lives as long as the process;
giving each purpose its own pool (and thread-name prefix) keeps a protocol
that waits on one kind of work from starving another, and makes profiles
readable.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

WORKERS = max(1, os.cpu_count() or 1)
_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def pool(purpose: str) -> ThreadPoolExecutor:
    """The shared pool for ``purpose`` (its threads are named ``rs-<purpose>_N``)."""
    with _lock:
        if purpose not in _pools:
            _pools[purpose] = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=f"rs-{purpose}")
        return _pools[purpose]


def chunk_size(n: int, largest: int) -> int:
    """Rows per chunk for ``n`` rows: at most ``largest``, and a whole number of chunks per thread.

    Fixed chunks of 2,048 would split a batch of 10^4 keys into five, and the
    fifth would run alone on one core while the other idles: a fifth of the
    phase lost on two cores. Equal chunks, a multiple of the thread count, keep
    every thread busy to the end.
    """
    rounds = max(1, -(-n // (largest * WORKERS)))
    return max(1, -(-n // (rounds * WORKERS)))
