"""The owner's controls on queries: quotas, rate limits and the query log.

Every OPRF evaluation is one key a client can look up; in cached mode the
client holds the whole encrypted table, so the number of evaluations is the
only thing standing between it and a dictionary attack on an enumerable key
space (USCCs are). The server therefore asks a :class:`QueryPolicy` before it
evaluates anything, and the policy counts what it allows.

:class:`FileQueryPolicy` is the standalone server's: limits given on the
command line, usage counted in an append-only log in the node home
(``HOME/pir/queries.log``, one JSON object per line: time, peer, table, mode,
query id, number of keys, outcome — never a key, never a record). The node
service backs the same interface with its grants and its audit log.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ...errors import QuotaExceeded


@dataclass(frozen=True)
class Allowance:
    """What is left for the peer after this query (``None``: no limit)."""

    keys_left_today: int | None
    queries_left_this_minute: int | None


class QueryPolicy(Protocol):
    """Decides whether ``peer`` may look up ``n_keys`` keys now, and counts them if so."""

    def check_and_count(self, peer: str, n_keys: int, *, table: str, mode: str, query_id: str) -> Allowance:
        """Raise :class:`~riskshare.errors.QuotaExceeded` (with a message for the peer) or count and allow."""
        ...

    def record(self, peer: str, event: str, *, table: str, query_id: str, **counts: int) -> None:
        """Log an event that uses no quota (a table download, a hint download, a refused request)."""
        ...


class UnlimitedPolicy:
    """No limits; counts kept in memory (tests, notebooks, benchmarks)."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = defaultdict(int)
        self.events: list[dict] = []

    def check_and_count(self, peer: str, n_keys: int, *, table: str, mode: str, query_id: str) -> Allowance:
        self.keys[peer] += n_keys
        self.events.append({"peer": peer, "event": "query", "table": table, "mode": mode, "query_id": query_id,
                            "keys": n_keys})
        return Allowance(None, None)

    def record(self, peer: str, event: str, *, table: str, query_id: str, **counts: int) -> None:
        self.events.append({"peer": peer, "event": event, "table": table, "query_id": query_id, **counts})


class FileQueryPolicy:
    """Per-peer limits with usage counted in an append-only JSON-lines log.

    ``max_keys_per_day``: keys (OPRF evaluations) per peer per calendar day in
    the server's local time; ``max_queries_per_minute``: query rounds per peer
    in any 60-second window. ``None`` or 0 means no limit. Usage survives
    restarts: today's counts are read back from the log when the policy opens.
    """

    def __init__(self, log_path: Path, *, max_keys_per_day: int | None = None,
                 max_queries_per_minute: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(log_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_keys_per_day = max_keys_per_day or None
        self.max_queries_per_minute = max_queries_per_minute or None
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._day: str = ""
        self._used: dict[str, int] = defaultdict(int)
        self._reload()

    def _today(self, now: float) -> str:
        return dt.datetime.fromtimestamp(now).date().isoformat()

    def _reload(self) -> None:
        now = self.clock()
        self._day = self._today(now)
        self._used = defaultdict(int)
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash: it counted nothing
                if entry.get("outcome") != "answered":
                    continue
                ts = float(entry.get("unix", 0))
                if self._today(ts) == self._day:
                    self._used[entry["peer"]] += int(entry.get("keys", 0))
                if now - ts < 60:
                    self._recent[entry["peer"]].append(ts)

    def used_today(self, peer: str) -> int:
        with self._lock:
            if self._today(self.clock()) != self._day:
                self._reload()
            return self._used[peer]

    def check_and_count(self, peer: str, n_keys: int, *, table: str, mode: str, query_id: str) -> Allowance:
        with self._lock:
            now = self.clock()
            if self._today(now) != self._day:
                self._reload()
            recent = self._recent[peer]
            while recent and now - recent[0] >= 60:
                recent.popleft()
            used = self._used[peer]
            refusal = None
            if self.max_queries_per_minute and len(recent) >= self.max_queries_per_minute:
                wait = 60 - (now - recent[0])
                refusal = (f"rate limit: peer '{peer}' may make {self.max_queries_per_minute} queries per minute; "
                           f"try again in {wait:.0f} s")
            elif self.max_keys_per_day and used + n_keys > self.max_keys_per_day:
                left = max(0, self.max_keys_per_day - used)
                refusal = (f"daily quota: peer '{peer}' has used {used} of its {self.max_keys_per_day} keys for "
                           f"{self._day} (this query asks {n_keys}, {left} left); the quota resets at midnight "
                           "server time — ask the table's owner to raise it")
            entry = {"peer": peer, "table": table, "mode": mode, "query_id": query_id, "keys": n_keys,
                     "outcome": "answered" if refusal is None else "refused", **({"reason": refusal} if refusal else {})}
            self._append(now, "query", entry)
            if refusal is not None:
                raise QuotaExceeded(refusal)
            recent.append(now)
            self._used[peer] = used + n_keys
            return Allowance(
                None if not self.max_keys_per_day else self.max_keys_per_day - self._used[peer],
                None if not self.max_queries_per_minute else self.max_queries_per_minute - len(recent),
            )

    def record(self, peer: str, event: str, *, table: str, query_id: str, **counts: int) -> None:
        with self._lock:
            outcome = "refused" if event == "refused" else "done"
            self._append(self.clock(), event, {"peer": peer, "table": table, "query_id": query_id,
                                                "outcome": outcome, **counts})

    def _append(self, now: float, event: str, entry: dict) -> None:
        stamp = dt.datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
        line = json.dumps({"time": stamp, "unix": round(now, 3), "event": event, **entry}, ensure_ascii=False)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (line + "\n").encode())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
