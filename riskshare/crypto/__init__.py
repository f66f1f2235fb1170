"""Cryptographic building blocks on top of well-kept libraries (OpenSSL, libsodium, GMP).

Nothing here invents a primitive: this package wraps library calls into batched,
vectorised operations and documents the parameters it uses.
"""
