"""Oblivious transfer: base OTs over a prime-order curve and OT extension on AES."""
