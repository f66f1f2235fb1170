"""Weight of evidence (WOE) and information value (IV) for both parties' features, labels encrypted.

For a binned feature with per-bin counts of events (y = 1) e_b and non-events
n_b, and totals E and N (Siddiqi, *Credit Risk Scorecards*, 2006, ch. 6)::

    WOE_b = ln( (e_b / E) / (n_b / N) )          (higher WOE = riskier bin)
    IV    = Σ_b (e_b / E - n_b / N) · WOE_b

A bin with no events or no non-events gets ``adjustment`` (default 0.5) in
place of the zero count, so WOE stays finite (the convention of FATE's
hetero feature binning). IV does not depend on the sign convention.

Protocol (guest G holds labels y and its own features; host H holds its features):

1. G generates a key pair and sends ``[[y_i]]`` for every aligned row;
2. H bins each of its features (equal-frequency or equal-width, cut points
   stay with H), merges adjacent bins until every bin holds at least
   ``min_bin_count`` rows, multiplies the ciphertexts of each bin together
   (``[[e_b]]``), re-randomises, and sends them with the bin counts;
3. G decrypts e_b, derives n_b = count_b - e_b, and computes WOE and IV;
4. optionally (``share_woe``) G sends each host bin's WOE back so that H can
   transform its own features; G tells H the IVs and which features pass the
   IV threshold.

What each party learns (semi-honest):

* **host**: nothing about labels unless ``share_woe`` is on; then the WOE of
  each of its bins, which with its own counts gives the event rate per bin
  (an aggregate of at least ``min_bin_count`` rows) — the price of a host-side
  WOE transform, which is why it is an explicit option. The host also learns
  the IV of each of its features and the selection.
* **guest**: for each host feature, the number of rows and events per bin (bins
  of at least ``min_bin_count`` rows), never the host's values or cut points;
  the host's feature names (to label the report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..crypto import he
from ..errors import InputError, ProtocolError
from ..net import Link
from . import binning as binning_mod
from .common import (
    agree, check_features, check_labels, params_from_dict, recv_ciphertexts, recv_public_key, send_ciphertexts,
    send_public_key,
)

ALGORITHM = "woe-iv"
PREFIX = "iv"


@dataclass
class IVParams:
    max_bin: int = 10
    method: str = "quantile"
    min_bin_count: int = 50
    adjustment: float = 0.5
    iv_threshold: float = 0.02
    share_woe: bool = False
    he_scheme: str = "ou"
    key_bits: int = 2048

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> "IVParams":
        p = params_from_dict(cls, doc, "WOE/IV")
        if not isinstance(p.max_bin, int) or not 2 <= p.max_bin <= 256:
            raise InputError("max_bin must be an integer from 2 to 256")
        if p.method not in binning_mod.METHODS:
            raise InputError(f"method must be one of {binning_mod.METHODS}")
        if not isinstance(p.min_bin_count, int) or p.min_bin_count < 1:
            raise InputError("min_bin_count must be a positive integer")
        if not 0 < float(p.adjustment) <= 1:
            raise InputError("adjustment must be in (0, 1]")
        if p.he_scheme not in ("ou", "paillier") or p.key_bits not in he.KEY_SIZES:
            raise InputError("he_scheme must be ou or paillier and key_bits one of " + str(he.KEY_SIZES))
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FeatureIV:
    name: str
    owner: str  # "guest" | "host"
    iv: float
    counts: list[int]
    events: list[int]
    woe: list[float]
    cuts: list[float] | None = None  # known to the owner only
    selected: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IVReport:
    features: list[FeatureIV] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params, "features": [f.to_json() for f in self.features]}

    def table(self) -> list[dict[str, Any]]:
        return [{"feature": f.name, "owner": f.owner, "iv": f.iv, "bins": len(f.counts), "selected": f.selected}
                for f in sorted(self.features, key=lambda f: -f.iv)]

    def selected(self, owner: str | None = None) -> list[str]:
        return [f.name for f in self.features if f.selected and (owner is None or f.owner == owner)]


def woe_iv(counts: np.ndarray, events: np.ndarray, adjustment: float = 0.5) -> tuple[np.ndarray, float]:
    """WOE per bin and the feature's IV from per-bin row and event counts."""
    counts = np.asarray(counts, dtype=np.float64)
    ev = np.asarray(events, dtype=np.float64)
    non = counts - ev
    E, N = ev.sum(), non.sum()
    if E <= 0 or N <= 0:
        raise InputError("WOE needs both events and non-events")
    ev_adj = np.where((ev == 0) | (non == 0), np.maximum(ev, adjustment), ev)
    non_adj = np.where((ev == 0) | (non == 0), np.maximum(non, adjustment), non)
    pe, pn = ev_adj / E, non_adj / N
    woe = np.log(pe / pn)
    return woe, float(np.sum((pe - pn) * woe))


def merge_small_bins(bin_idx: np.ndarray, cuts: np.ndarray, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent bins left to right until each holds >= min_count rows (a small tail joins its neighbour).

    Returns the new bin index of every row and the surviving cut points (a subset of ``cuts``).
    """
    counts = np.bincount(bin_idx, minlength=len(cuts) + 1)
    group = np.zeros(len(counts), dtype=np.int64)
    kept: list[int] = []
    g, acc = 0, 0
    for b in range(len(counts)):
        group[b] = g
        acc += int(counts[b])
        if acc >= min_count and b < len(counts) - 1:
            kept.append(b)  # cut b (between bins b and b+1) survives
            g, acc = g + 1, 0
    if acc < min_count and g > 0:
        group[group == g] = g - 1
        kept.pop()
    return group[bin_idx], cuts[np.asarray(kept, dtype=np.int64)]


def _bin_feature(x: np.ndarray, p: IVParams) -> tuple[np.ndarray, np.ndarray]:
    b = binning_mod.fit(x.reshape(-1, 1), p.max_bin, p.method)
    cuts = b.cuts[0]
    idx = b.transform(x.reshape(-1, 1))[:, 0].astype(np.int64)
    return merge_small_bins(idx, cuts, p.min_bin_count)


def iv_guest(
    link: Link, peer: str, X: np.ndarray, y: np.ndarray, params: dict[str, Any] | None = None,
    *, feature_names: list[str] | None = None,
) -> IVReport:
    """WOE/IV of the guest's features (locally) and of the host's features (labels encrypted)."""
    X = check_features(X, "guest features")
    y = check_labels(y, len(X))
    p = IVParams.from_dict(params)
    agreed = agree(link, peer, "guest", ALGORITHM, p.to_dict(), len(X), step=f"{PREFIX}/hello")
    p = IVParams.from_dict(agreed)
    names = feature_names or [f"x{j}" for j in range(X.shape[1])]
    report = IVReport(params=p.to_dict())
    for j in range(X.shape[1]):
        idx, cuts = _bin_feature(X[:, j], p)
        counts = np.bincount(idx, minlength=len(cuts) + 1)
        events = np.bincount(idx, weights=y, minlength=len(cuts) + 1).astype(np.int64)
        woe, iv = woe_iv(counts, events, p.adjustment)
        report.features.append(FeatureIV(names[j], "guest", iv, counts.tolist(), events.tolist(), woe.tolist(),
                                         cuts.tolist()))

    sk = he.generate_keypair(p.he_scheme, p.key_bits)
    send_public_key(link, peer, sk.public_key, f"{PREFIX}/pk")
    send_ciphertexts(link, peer, f"{PREFIX}/labels", sk.encrypt(y.astype(np.int64)))
    meta = link.recv_json(peer, f"{PREFIX}/host_bins")
    if not isinstance(meta, dict) or not isinstance(meta.get("counts"), list) or not isinstance(meta.get("names"), list):
        raise ProtocolError(f"peer '{peer}' sent malformed bin counts")
    host_counts = meta["counts"]
    total_bins = sum(len(c) for c in host_counts) if all(isinstance(c, list) for c in host_counts) else -1
    if total_bins < 0 or len(meta["names"]) != len(host_counts):
        raise ProtocolError(f"peer '{peer}' sent malformed bin counts")
    sums = sk.decrypt_list(recv_ciphertexts(link, peer, f"{PREFIX}/events", sk.public_key, total_bins))
    pos = 0
    host_woe = []
    for name, counts in zip(meta["names"], host_counts):
        c = np.asarray(counts, dtype=np.int64)
        ev = np.asarray(sums[pos: pos + len(c)], dtype=np.int64)
        pos += len(c)
        if np.any(c < p.min_bin_count) or np.any(ev < 0) or np.any(ev > c) or c.sum() != len(X):
            raise ProtocolError(f"peer '{peer}' sent inconsistent bins for feature '{name}'")
        woe, iv = woe_iv(c, ev, p.adjustment)
        report.features.append(FeatureIV(str(name), "host", iv, c.tolist(), ev.tolist(), woe.tolist()))
        host_woe.append(woe.tolist())
    for f in report.features:
        f.selected = f.iv >= p.iv_threshold
    host_feats = [f for f in report.features if f.owner == "host"]
    link.send_json(peer, f"{PREFIX}/result", {
        "iv": [f.iv for f in host_feats], "selected": [f.selected for f in host_feats],
        "woe": host_woe if p.share_woe else None,
    })
    return report


def iv_host(
    link: Link, peer: str, X: np.ndarray, params: dict[str, Any] | None = None,
    *, feature_names: list[str] | None = None,
) -> IVReport:
    """The host's side: bins its features, sums the encrypted labels per bin; gets IVs (and WOE if shared)."""
    X = check_features(X, "host features")
    overrides = dict(params or {})
    IVParams.from_dict(overrides)
    agreed = agree(link, peer, "host", ALGORITHM, {}, len(X), host_overrides=overrides, step=f"{PREFIX}/hello")
    p = IVParams.from_dict(agreed)
    names = feature_names or [f"x{j}" for j in range(X.shape[1])]
    pk = recv_public_key(link, peer, f"{PREFIX}/pk", scheme=p.he_scheme, bits=p.key_bits)
    labels = recv_ciphertexts(link, peer, f"{PREFIX}/labels", pk, len(X)).values
    m = pk.modulus
    sums: list = []
    all_counts, all_cuts = [], []
    for j in range(X.shape[1]):
        idx, cuts = _bin_feature(X[:, j], p)
        counts = np.bincount(idx, minlength=len(cuts) + 1)
        order = np.argsort(idx, kind="stable").tolist()
        pos = 0
        for b in range(len(counts)):
            acc = 1
            for i in order[pos: pos + counts[b]]:
                acc = acc * labels[i] % m
            pos += int(counts[b])
            sums.append(acc)
        all_counts.append(counts.tolist())
        all_cuts.append(cuts)
    link.send_json(peer, f"{PREFIX}/host_bins", {"names": names, "counts": all_counts})
    send_ciphertexts(link, peer, f"{PREFIX}/events", pk.rerandomize(he.EncryptedVector(pk, sums)))
    result = link.recv_json(peer, f"{PREFIX}/result")
    if not isinstance(result, dict) or not isinstance(result.get("iv"), list) or len(result["iv"]) != X.shape[1]:
        raise ProtocolError(f"peer '{peer}' sent a malformed IV result")
    woes = result.get("woe")
    report = IVReport(params=p.to_dict())
    for j in range(X.shape[1]):
        woe = woes[j] if isinstance(woes, list) else []
        if woes is not None and (not isinstance(woe, list) or len(woe) != len(all_counts[j])):
            raise ProtocolError(f"peer '{peer}' sent WOE values that do not match the bins")
        report.features.append(FeatureIV(names[j], "host", float(result["iv"][j]), all_counts[j], [],
                                         [float(w) for w in woe], all_cuts[j].tolist(),
                                         bool(result["selected"][j])))
    return report


def woe_transform(X: np.ndarray, features: list[FeatureIV]) -> np.ndarray:
    """Replace each value by its bin's WOE (the owner's own features, with cut points and WOE known)."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] != len(features):
        raise InputError(f"expected {len(features)} columns, got {X.shape[1]}")
    out = np.empty_like(X)
    for j, f in enumerate(features):
        if f.cuts is None or not f.woe:
            raise InputError(f"no WOE known for feature '{f.name}'",
                             hint="run the IV step with share_woe=true to transform host features")
        out[:, j] = np.asarray(f.woe)[np.searchsorted(np.asarray(f.cuts), X[:, j], side="right")]
    return out
