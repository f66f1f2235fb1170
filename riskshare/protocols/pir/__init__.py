"""Labeled keyword PIR (匿踪查询): look a key up in a peer's table, learning only its record.

The server (data owner) holds a table key → record. The client learns, for each
key it asks, the record or "not found", and nothing about any other record; the
server learns that a query happened and how many keys it held — nothing about
which keys.

Construction. The server evaluates an OPRF (:mod:`riskshare.crypto.oprf`,
RFC 9497 over ristretto255) on every key of its table; each record is sealed
with AES-256-GCM under a key derived from ``F(k, key)`` and located by a tag
derived from the same output (:mod:`.records`). A client obtains ``F(k, key)``
for its keys through one oblivious evaluation round; without it, a record is
useless. Two retrieval modes share everything else:

* ``cached`` — the client keeps the whole encrypted table (:mod:`.cache`),
  fetched once and updated by version; a query is one OPRF round.
* ``pir`` — the client downloads only a fixed hint and fetches the bucket
  holding its record with SimplePIR (:mod:`.simplepir`), one LWE query per key;
  the server answers with one pass over the table.

Security model: semi-honest server (it follows the protocol; a deviating server
can at worst make lookups fail — every record is authenticated); the client
may be malicious toward the table: it learns records only for keys it paid an
OPRF evaluation for, and evaluations are counted and limited by the owner's
:class:`~.policy.QueryPolicy`. What each party learns, including the cached
mode's leakage (table size, record width, which tags change between
versions), is spelled out in ``docs/pir.md``.
"""

from .cache import CacheIntegrityError, CacheStore, TableCopy
from .client import Answer, HintStore, PirClient, QueryResult, normalise_keys
from .policy import Allowance, FileQueryPolicy, QueryPolicy, UnlimitedPolicy
from .server import PirServer, build_database
from .table import ServerTable, prepare_table

__all__ = [
    "Answer", "Allowance", "CacheIntegrityError", "CacheStore", "FileQueryPolicy", "HintStore", "PirClient",
    "PirServer", "QueryPolicy", "QueryResult", "ServerTable", "TableCopy", "UnlimitedPolicy", "build_database",
    "normalise_keys", "prepare_table",
]
