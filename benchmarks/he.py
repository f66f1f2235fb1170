"""Costs of the homomorphic-encryption engine on this machine; prints JSON.

    python benchmarks/he.py [--count 2000] [--bits 2048]

Per-operation microseconds for each scheme: public-key and key-owner (CRT)
encryption in one process and with the worker pool, ciphertext addition,
62-bit scalar multiplication, decryption, and X^T·[[d]] per term.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from riskshare.crypto import he


def timed(fn, count):
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) / count * 1e6


def run(scheme: str, bits: int, count: int) -> dict:
    t0 = time.perf_counter()
    sk = he.generate_keypair(scheme, bits)
    keygen = time.perf_counter() - t0
    pk = sk.public_key
    pk.encrypt([1], workers=1)
    sk.encrypt([1], workers=1)  # build the fixed-base tables outside the timings
    rng = np.random.default_rng(0)
    values = rng.integers(-(2**62), 2**62, size=count)
    res: dict = {"scheme": scheme, "bits": bits, "keygen_s": round(keygen, 3)}
    ct, res["encrypt_public_us"] = timed(lambda: pk.encrypt(values, workers=1), count)
    _, res["encrypt_owner_us"] = timed(lambda: sk.encrypt(values, workers=1), count)
    sk.encrypt(values[:600], workers=2)  # start the pool
    _, res["encrypt_owner_pool_us"] = timed(lambda: sk.encrypt(values, workers=2), count)
    _, res["add_us"] = timed(lambda: pk.add(ct, ct), count)
    _, res["scalar_mul_62bit_us"] = timed(lambda: pk.mul_scalar(ct, values), count)
    small = ct[: max(50, count // 10)]
    _, res["decrypt_us"] = timed(lambda: sk.decrypt_list(small, workers=1), len(small))
    mat = rng.integers(-(2**40), 2**40, size=(4, count))
    _, res["dot_40bit_per_term_us"] = timed(lambda: pk.dot(mat, ct), 4 * count)
    res["ciphertext_bytes"] = pk.ciphertext_bytes
    res["plaintext_bits"] = pk.plaintext_bits
    return {k: (round(v, 1) if isinstance(v, float) and k.endswith("us") else v) for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--bits", type=int, default=2048)
    args = ap.parse_args()
    print(json.dumps({"machine_note": "shared 2-core machine; compare ratios within one run",
                      "results": [run(s, args.bits, args.count) for s in ("paillier", "ou")]}, indent=2))
    he.shutdown_pools()


if __name__ == "__main__":
    main()
