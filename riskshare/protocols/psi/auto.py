"""``--protocol auto``: pick the protocol from the two set sizes (exchanged first) and the output mode.

The rule is a pure function of values both sides know after the first
handshake, so both pick the same protocol without another message:

* ``output_mode="count"`` -> ``ecdh`` (the only protocol here that hides
  which elements matched from the receiver);
* ``output_mode="sum"`` -> ``sum``;
* intersection with both sets of at most ``SMALL`` IDs -> ``ecdh``: a few
  thousand group operations cost less than the 512 base OTs that OT
  extension needs up front;
* otherwise -> ``ot`` (KKRT16), the fastest protocol for large sets.

``unbalanced`` is never picked automatically: it needs the server's set
preprocessed in advance, which is an operator's decision.
"""

from __future__ import annotations

SMALL = 4096


def choose(n_receiver: int, n_sender: int, output_mode: str) -> str:
    if output_mode == "count":
        return "ecdh"
    if output_mode == "sum":
        return "sum"
    if max(n_receiver, n_sender) <= SMALL:
        return "ecdh"
    return "ot"
