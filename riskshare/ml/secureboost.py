"""SecureBoost: gradient-boosted trees over vertically split data (Cheng et al., IEEE Intelligent Systems 2021,
"SecureBoost: A Lossless Federated Learning Framework"; arXiv 1901.08755), with the packing and
histogram-subtraction optimisations of SecureBoost+ (Chen et al., arXiv 2110.10927).

Roles: the **guest** (active party) holds the labels and some features and owns
the homomorphic key; the **host** (passive party) holds other features of the
same aligned rows. The result is *lossless*: the same trees XGBoost's
histogram method grows on the joined data (second-order gain, L2 ``reg_lambda``,
``min_child_weight``, ``gamma``, shrinkage ``learning_rate``), up to fixed-point
rounding of the gradients (2^-33 per value, below float32).

Per tree (level by level, depth ``max_depth``):

1. the guest computes gradients g and hessians h of the logistic loss, packs
   each pair into one plaintext (``g·2^f + h·2^(f+S)``, two S-bit slots) and
   sends ``[[g, h]]`` for the (sub)sampled rows — one ciphertext per row;
2. per level, the guest tells the host which rows sit in which node and
   which nodes need a histogram (the root, then only the *smaller* child of
   each split: the guest derives its sibling by subtracting in plaintext);
3. the host sums the ciphertexts per bin of each of its binned features,
   forms the cumulative sums that are its candidate splits, **re-randomises**
   them (otherwise the guest could test which of its own ciphertexts went into
   a sum), shuffles the candidates with a permutation fixed for the tree, and
   sends them;
4. the guest decrypts, evaluates every host and guest candidate, and picks the
   best split per node; for a host split it sends only the candidate's
   shuffled index; the host looks up (feature, threshold), keeps it in its
   lookup table, and returns which of the node's rows go left;
5. leaves get ``-learning_rate · G / (H + reg_lambda)``; the guest keeps them.

Security model: semi-honest guest and host, no third party. What each learns:

* **host**: nothing about labels, gradients, leaf weights or the guest's
  features and thresholds. It learns the *partition* of rows at every node of
  every tree (which rows are in which node — including the outcome of guest
  splits, as in SecureBoost), which rows each tree samples, the number of
  trees and their shape, and which of its own candidate splits were chosen.
* **guest**: for each host candidate split, the sums (G_L, H_L) of gradients
  and hessians of the rows on its left — in shuffled order, without the
  host's feature or threshold; and for each chosen host split, which rows went
  left. It never sees host feature values or thresholds.
* At prediction the guest learns, for each scored row, the direction it takes
  at every host node (as in SecureBoost's federated inference); scores go to
  the guest only.

Parameters: HE scheme ``ou`` (Okamoto–Uchiyama, default: faster) or
``paillier``, 2048-bit keys by default; fixed-point ``frac_bits`` = 32.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from gmpy2 import mpz

from ..crypto import he
from ..errors import InputError, ProtocolError
from ..net import Link
from . import binning as binning_mod
from .common import (
    TrainLog, agree, check_features, check_labels, params_from_dict, recv_ciphertexts, recv_public_key,
    send_ciphertexts, send_public_key,
)

ALGORITHM = "secureboost"
MAX_DEPTH_LIMIT = 8
PREFIX = "sb"


@dataclass
class SecureBoostParams:
    n_trees: int = 30
    max_depth: int = 3
    learning_rate: float = 0.3
    max_bin: int = 32
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    gamma: float = 0.0
    subsample: float = 1.0
    first_tree_guest_only: bool = False
    he_scheme: str = "ou"
    key_bits: int = 2048
    frac_bits: int = 32
    seed: int | None = None

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> "SecureBoostParams":
        p = params_from_dict(cls, doc, "SecureBoost")
        p.check()
        return p

    def check(self) -> None:
        def bad(msg: str) -> InputError:
            return InputError(f"invalid SecureBoost parameters: {msg}")
        if not isinstance(self.n_trees, int) or not 1 <= self.n_trees <= 10000:
            raise bad("n_trees must be an integer from 1 to 10000")
        if not isinstance(self.max_depth, int) or not 1 <= self.max_depth <= MAX_DEPTH_LIMIT:
            raise bad(f"max_depth must be an integer from 1 to {MAX_DEPTH_LIMIT}")
        if not 0 < float(self.learning_rate) <= 1:
            raise bad("learning_rate must be in (0, 1]")
        if not isinstance(self.max_bin, int) or not 2 <= self.max_bin <= 256:
            raise bad("max_bin must be an integer from 2 to 256")
        if float(self.min_child_weight) < 0 or float(self.reg_lambda) < 0 or float(self.gamma) < 0:
            raise bad("min_child_weight, reg_lambda and gamma must be >= 0")
        if not 0 < float(self.subsample) <= 1:
            raise bad("subsample must be in (0, 1]")
        if self.he_scheme not in ("ou", "paillier"):
            raise bad("he_scheme must be 'ou' or 'paillier'")
        if self.key_bits not in he.KEY_SIZES:
            raise bad(f"key_bits must be one of {he.KEY_SIZES}")
        if not isinstance(self.frac_bits, int) or not 16 <= self.frac_bits <= 52:
            raise bad("frac_bits must be an integer from 16 to 52")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- models -------------------------------------------------------------------------


@dataclass
class GuestTree:
    """Heap-numbered nodes (children of k: 2k+1, 2k+2). owner: 'guest' | 'host' | 'leaf'."""

    nodes: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SecureBoostGuestModel:
    model_id: str
    params: dict[str, Any]
    base_score: float
    trees: list[GuestTree]
    feature_names: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "params": self.params, "base_score": self.base_score,
                "feature_names": self.feature_names, "history": self.history,
                "trees": [{str(k): v for k, v in t.nodes.items()} for t in self.trees]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "SecureBoostGuestModel":
        trees = [GuestTree({int(k): v for k, v in t.items()}) for t in doc["trees"]]
        return cls(doc["model_id"], doc["params"], float(doc["base_score"]), trees, list(doc["feature_names"]),
                   list(doc.get("history", [])))


@dataclass
class SecureBoostHostModel:
    model_id: str
    params: dict[str, Any]
    feature_names: list[str]
    lookup: list[dict[str, Any]]  # {"tree", "node", "feature", "threshold"}: rows with x < threshold go left

    def to_json(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "params": self.params, "feature_names": self.feature_names,
                "lookup": self.lookup}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "SecureBoostHostModel":
        return cls(doc["model_id"], doc["params"], list(doc["feature_names"]), list(doc["lookup"]))


# -- helpers ------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _slot_bits(frac_bits: int, n_rows: int) -> int:
    # |sum| <= n·2^frac (|g| <= 1, h <= 1/4): one sign bit and one spare bit on top
    return frac_bits + int(np.ceil(np.log2(n_rows + 1))) + 2


def _candidate_layout(n_bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical candidate list: (feature, bin k) meaning 'left = bin <= k', k < n_bins-1."""
    feats = np.concatenate([np.full(int(b) - 1, j, dtype=np.int64) for j, b in enumerate(n_bins)] or [np.zeros(0, np.int64)])
    ks = np.concatenate([np.arange(int(b) - 1, dtype=np.int64) for b in n_bins] or [np.zeros(0, np.int64)])
    return feats, ks


def _gains(GL: np.ndarray, HL: np.ndarray, G: float, H: float, p: SecureBoostParams) -> np.ndarray:
    GR, HR = G - GL, H - HL
    lam = p.reg_lambda
    gain = GL * GL / (HL + lam) + GR * GR / (HR + lam) - G * G / (H + lam)
    ok = (HL >= p.min_child_weight) & (HR >= p.min_child_weight)
    return np.where(ok, gain, -np.inf)


def _packbits(mask: np.ndarray) -> np.ndarray:
    return np.packbits(mask.astype(bool))


def _unpackbits(data: np.ndarray, count: int) -> np.ndarray:
    return np.unpackbits(data, count=count).astype(bool)


# -- guest ------------------------------------------------------------------------------


def train_guest(
    link: Link, peer: str, X: np.ndarray, y: np.ndarray, params: dict[str, Any] | None = None,
    *, feature_names: list[str] | None = None, log: TrainLog | None = None,
) -> SecureBoostGuestModel:
    """Train as the guest (labels + own features); returns the guest's part of the model."""
    X = check_features(X, "guest features")
    y = check_labels(y, len(X)).astype(np.float64)
    p = SecureBoostParams.from_dict(params)
    n = len(X)
    agreed = agree(link, peer, "guest", ALGORITHM, p.to_dict(), n, step=f"{PREFIX}/hello")
    p = SecureBoostParams.from_dict(agreed)
    log = log or TrainLog()
    rng = np.random.default_rng(p.seed if p.seed is not None else secrets.randbits(64))
    model_id = uuid.uuid4().hex

    sk = he.generate_keypair(p.he_scheme, p.key_bits)
    pk = sk.public_key
    slot = _slot_bits(p.frac_bits, n)
    if 2 * slot > pk.plaintext_bits:
        raise InputError(f"{n} rows need {2 * slot}-bit plaintexts; the key offers {pk.plaintext_bits}")
    send_public_key(link, peer, pk, f"{PREFIX}/pk")
    link.send_json(peer, f"{PREFIX}/setup", {"model_id": model_id, "slot_bits": slot})
    info = link.recv_json(peer, f"{PREFIX}/host_info")
    n_cand = info.get("n_candidates") if isinstance(info, dict) else None
    if not isinstance(n_cand, int) or not 0 <= n_cand <= 256 * 10000:
        raise ProtocolError(f"peer '{peer}' sent an invalid candidate count")

    bins = binning_mod.fit(X, p.max_bin, "quantile")
    Xb = bins.transform(X)
    g_nbins = bins.n_bins
    g_feats, g_ks = _candidate_layout(g_nbins)
    offsets = np.r_[0, np.cumsum(g_nbins)]

    mean_y = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    base = float(np.log(mean_y / (1 - mean_y)))
    F = np.full(n, base)
    trees: list[GuestTree] = []
    scale = float(2**p.frac_bits)

    for t in range(p.n_trees):
        prob = _sigmoid(F)
        # gradients on the fixed-point grid everywhere: sums of such values are exact in float64
        # (n·2^frac < 2^53), so guest-side and decrypted host-side sums are bit-identical
        g = np.rint((prob - y) * scale) / scale
        h = np.rint(prob * (1 - prob) * scale) / scale
        sampled = rng.random(n) < p.subsample if p.subsample < 1 else np.ones(n, dtype=bool)
        if not sampled.any():
            sampled[rng.integers(n)] = True
        use_host = n_cand > 0 and not (t == 0 and p.first_tree_guest_only)
        link.send_json(peer, f"{PREFIX}/tree", {"t": t, "use_host": use_host})
        if use_host:
            link.send(peer, f"{PREFIX}/sampled", _packbits(sampled))
            gi = np.rint(g[sampled] * scale).astype(np.int64)  # exact: g is on the grid already
            hi = np.rint(h[sampled] * scale).astype(np.int64)
            packed = he.pack([gi, hi], slot)
            send_ciphertexts(link, peer, f"{PREFIX}/gh", sk.encrypt(packed))
        tree = _grow_tree_guest(link, peer, sk, p, Xb, g, h, sampled, g_feats, g_ks, offsets, bins,
                                n_cand if use_host else 0, slot)
        leaf_of = tree.pop("_leaf_of")
        weights = tree.pop("_weights")
        F += weights[leaf_of]
        trees.append(GuestTree(tree["nodes"]))
        log(tree=f"{t + 1}/{p.n_trees}", loss=_logloss(y, _sigmoid(F)))
    link.send_json(peer, f"{PREFIX}/tree", {"t": -1})
    return SecureBoostGuestModel(model_id, p.to_dict(), base, trees,
                                 feature_names or [f"x{j}" for j in range(X.shape[1])], log.history)


def _grow_tree_guest(link, peer, sk, p, Xb, g, h, sampled, g_feats, g_ks, offsets, bins, n_cand, slot):
    n = len(g)
    node_of = np.zeros(n, dtype=np.int32)
    nodes: dict[int, dict[str, Any]] = {}
    host_hist: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    frontier = [0]
    gs, hs = np.where(sampled, g, 0.0), np.where(sampled, h, 0.0)
    scale = float(2**p.frac_bits)
    for depth in range(p.max_depth):
        if not frontier:
            break
        # which nodes need a histogram from the host: the root, then the smaller child of each pair
        counts = {k: int(np.sum(sampled & (node_of == k))) for k in frontier}
        requests = []
        for k in frontier:
            if k == 0:
                requests.append(k)
            elif k % 2 == 1:  # left child; its sibling k+1 is in the frontier too
                requests.append(k if counts[k] <= counts.get(k + 1, 0) else k + 1)
        if n_cand:
            link.send_json(peer, f"{PREFIX}/level", {"depth": depth, "nodes": requests})
            link.send(peer, f"{PREFIX}/node_of", node_of.astype("<i2"))
            ct = recv_ciphertexts(link, peer, f"{PREFIX}/hist", sk.public_key, len(requests) * n_cand)
            sums = he.unpack(sk.decrypt_list(ct), 2, slot)
            GL_all = np.asarray(sums[0], dtype=np.float64).reshape(len(requests), n_cand) / scale
            HL_all = np.asarray(sums[1], dtype=np.float64).reshape(len(requests), n_cand) / scale
            for i, k in enumerate(requests):
                host_hist[k] = (GL_all[i], HL_all[i])
                if k != 0:
                    sib = k + 1 if k % 2 == 1 else k - 1
                    parent = (k - 1) // 2
                    PG, PH = host_hist[parent]
                    host_hist[sib] = (PG - GL_all[i], PH - HL_all[i])
        decisions: dict[int, tuple] = {}
        for k in frontier:
            rows = node_of == k
            srows = rows & sampled
            G, H = float(gs[srows].sum()), float(hs[srows].sum())
            best_gain, best = p.gamma, None
            # guest candidates from plaintext histograms
            if Xb.shape[1]:
                idx = np.flatnonzero(srows)
                flat = (Xb[idx].astype(np.int64) + offsets[:-1]).reshape(-1)
                hg = np.bincount(flat, weights=np.repeat(g[idx], Xb.shape[1]), minlength=offsets[-1])
                hh = np.bincount(flat, weights=np.repeat(h[idx], Xb.shape[1]), minlength=offsets[-1])
                cg = np.concatenate([np.cumsum(hg[offsets[j]:offsets[j + 1]])[:-1] for j in range(Xb.shape[1])])
                ch = np.concatenate([np.cumsum(hh[offsets[j]:offsets[j + 1]])[:-1] for j in range(Xb.shape[1])])
                if len(cg):
                    gains = _gains(cg, ch, G, H, p)
                    i = int(np.argmax(gains))
                    if gains[i] > best_gain:
                        best_gain, best = float(gains[i]), ("guest", int(g_feats[i]), int(g_ks[i]))
            if n_cand and k in host_hist:
                GL, HL = host_hist[k]
                gains = _gains(GL, HL, G, H, p)
                i = int(np.argmax(gains))
                if gains[i] > best_gain:
                    # every candidate with the same gain: the host keeps the first in its own column order
                    tied = np.flatnonzero(gains == gains[i]).tolist()
                    best_gain, best = float(gains[i]), ("host", tied, None)
            decisions[k] = (best, G, H, best_gain)
        host_splits = [[k, d[0][1]] for k, d in decisions.items() if d[0] is not None and d[0][0] == "host"]
        if n_cand:
            link.send_json(peer, f"{PREFIX}/splits", {"splits": host_splits})
            if host_splits:
                raw = link.recv_array(peer, f"{PREFIX}/masks", dtype=np.uint8, shape=(None,))
        offset = 0
        new_frontier = []
        for k in frontier:
            best, G, H, gain = decisions[k]
            rows = np.flatnonzero(node_of == k)
            if best is None:
                nodes[k] = {"owner": "leaf", "weight": float(-p.learning_rate * G / (H + p.reg_lambda))}
                continue
            if best[0] == "guest":
                _, j, kb = best
                go_left = Xb[rows, j] <= kb
                nodes[k] = {"owner": "guest", "feature": j, "threshold": float(bins.cuts[j][kb]), "gain": gain}
            else:
                nbytes = (len(rows) + 7) // 8
                chunk = raw[offset: offset + nbytes]
                if len(chunk) != nbytes:
                    raise ProtocolError(f"peer '{peer}' sent split masks of the wrong size")
                offset += nbytes
                go_left = _unpackbits(chunk, len(rows))
                nodes[k] = {"owner": "host", "gain": gain}
            node_of[rows[go_left]] = 2 * k + 1
            node_of[rows[~go_left]] = 2 * k + 2
            new_frontier += [2 * k + 1, 2 * k + 2]
        if n_cand and host_splits and offset != len(raw):
            raise ProtocolError(f"peer '{peer}' sent split masks of the wrong size")
        frontier = new_frontier
    for k in frontier:  # the last level: leaves
        srows = (node_of == k) & sampled
        G, H = float(gs[srows].sum()), float(hs[srows].sum())
        nodes[k] = {"owner": "leaf", "weight": float(-p.learning_rate * G / (H + p.reg_lambda))}
    if n_cand:
        link.send_json(peer, f"{PREFIX}/level", {"depth": -1, "nodes": []})
    max_id = max(nodes) + 1
    weights = np.zeros(max_id)
    for k, nd in nodes.items():
        if nd["owner"] == "leaf":
            weights[k] = nd["weight"]
    return {"nodes": nodes, "_leaf_of": node_of, "_weights": weights}


# -- host -------------------------------------------------------------------------------


def train_host(
    link: Link, peer: str, X: np.ndarray, params: dict[str, Any] | None = None,
    *, feature_names: list[str] | None = None, log: TrainLog | None = None,
) -> SecureBoostHostModel:
    """Train as the host (features only); returns the host's part (its split lookup table)."""
    X = check_features(X, "host features")
    n = len(X)
    overrides = dict(params or {})
    SecureBoostParams.from_dict({**overrides})  # validate what the host set
    agreed = agree(link, peer, "host", ALGORITHM, {}, n, host_overrides=overrides, step=f"{PREFIX}/hello")
    p = SecureBoostParams.from_dict(agreed)
    log = log or TrainLog()
    pk = recv_public_key(link, peer, f"{PREFIX}/pk", scheme=p.he_scheme, bits=p.key_bits)
    setup = link.recv_json(peer, f"{PREFIX}/setup")
    if not isinstance(setup, dict) or not isinstance(setup.get("model_id"), str):
        raise ProtocolError(f"peer '{peer}' sent a malformed model set-up")
    model_id = setup["model_id"]
    slot = setup.get("slot_bits")
    if slot != _slot_bits(p.frac_bits, n) or 2 * slot > pk.plaintext_bits:
        raise ProtocolError(f"peer '{peer}' proposed an inconsistent packing ({slot} bits)")

    bins = binning_mod.fit(X, p.max_bin, "quantile")
    Xb = bins.transform(X)
    feats, ks = _candidate_layout(bins.n_bins)
    bin_offsets = np.r_[0, np.cumsum(bins.n_bins)].astype(np.int64)
    n_cand = len(feats)
    link.send_json(peer, f"{PREFIX}/host_info", {"n_candidates": n_cand})
    lookup: list[dict[str, Any]] = []
    sys_rng = np.random.default_rng(secrets.randbits(64))

    while True:
        msg = link.recv_json(peer, f"{PREFIX}/tree")
        t = msg.get("t") if isinstance(msg, dict) else None
        if t == -1:
            break
        if not isinstance(t, int) or not 0 <= t < p.n_trees:
            raise ProtocolError(f"peer '{peer}' sent an unexpected tree number {t!r}")
        if not msg.get("use_host"):
            log(tree=f"{t + 1}/{p.n_trees}", note="guest features only")
            continue
        sampled = _unpackbits(link.recv_array(peer, f"{PREFIX}/sampled", dtype=np.uint8, shape=((n + 7) // 8,)), n)
        cts = recv_ciphertexts(link, peer, f"{PREFIX}/gh", pk, int(sampled.sum()))
        slot_of = np.cumsum(sampled) - 1  # row -> position in cts
        perm = sys_rng.permutation(n_cand)  # shuffled order of candidates, fixed for this tree
        node_of = np.zeros(n, dtype=np.int32)
        while True:
            level = link.recv_json(peer, f"{PREFIX}/level")
            if not isinstance(level, dict) or not isinstance(level.get("nodes"), list):
                raise ProtocolError(f"peer '{peer}' sent a malformed level request")
            if level.get("depth") == -1:
                break
            depth = level.get("depth")
            if not isinstance(depth, int) or not 0 <= depth < p.max_depth:
                raise ProtocolError(f"peer '{peer}' asked for depth {depth!r}")
            node_of = link.recv_array(peer, f"{PREFIX}/node_of", dtype="<i2", shape=(n,)).astype(np.int32)
            requests = level["nodes"]
            if len(requests) > 2 ** depth or not all(isinstance(k, int) and 0 <= k < 2 ** (depth + 1) - 1
                                                      for k in requests):
                raise ProtocolError(f"peer '{peer}' asked for impossible nodes {requests[:5]}")
            out: list[mpz] = []
            for cand in _host_candidates(pk, cts, slot_of, node_of, sampled, requests, Xb, bin_offsets):
                out.extend(cand[i] for i in perm.tolist())
            ct = pk.rerandomize(he.EncryptedVector(pk, out))
            send_ciphertexts(link, peer, f"{PREFIX}/hist", ct)
            splits = link.recv_json(peer, f"{PREFIX}/splits")
            chosen = splits.get("splits") if isinstance(splits, dict) else None
            if not isinstance(chosen, list):
                raise ProtocolError(f"peer '{peer}' sent malformed splits")
            masks = []
            for item in chosen:
                if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int)
                        or not isinstance(item[1], list) or not item[1] or len(item[1]) > n_cand
                        or not all(isinstance(c, int) and 0 <= c < n_cand for c in item[1])):
                    raise ProtocolError(f"peer '{peer}' sent a malformed split {item!r}")
                k = item[0]
                canonical = min(int(perm[c]) for c in item[1])  # ties: the first in column and bin order
                j, kb = int(feats[canonical]), int(ks[canonical])
                rows = np.flatnonzero(node_of == k)
                # equal candidates (empty bins in this node) split the node's rows alike: keep the lowest
                # threshold, as a plaintext search in bin order would
                present = np.bincount(Xb[rows[sampled[rows]], j], minlength=int(bins.n_bins[j]))
                while kb > 0 and present[kb] == 0:
                    kb -= 1
                masks.append(_packbits(Xb[rows, j] <= kb))
                lookup.append({"tree": t, "node": k, "feature": j, "threshold": float(bins.cuts[j][kb])})
            if chosen:
                link.send(peer, f"{PREFIX}/masks", np.concatenate(masks))
        log(tree=f"{t + 1}/{p.n_trees}", host_splits=sum(1 for e in lookup if e["tree"] == t))
    return SecureBoostHostModel(model_id, p.to_dict(), feature_names or [f"x{j}" for j in range(X.shape[1])], lookup)


def _host_candidates(pk: he.PublicKey, cts: he.EncryptedVector, slot_of: np.ndarray, node_of: np.ndarray,
                     sampled: np.ndarray, nodes: list[int], Xb: np.ndarray, bin_offsets: np.ndarray) -> list[list[mpz]]:
    """Encrypted cumulative (G, H) sums for every candidate split of every feature, per node, canonical order.

    One encrypted histogram over all the requested nodes at once (group = node, feature,
    bin), summed in worker processes; then each feature's bins are accumulated left to right.
    """
    total = int(bin_offsets[-1])
    rows = [np.flatnonzero((node_of == k) & sampled) for k in nodes]
    groups = np.concatenate([Xb[r].astype(np.int64) + bin_offsets[:-1] + i * total for i, r in enumerate(rows)]
                            or [np.zeros((0, Xb.shape[1]), np.int64)])
    sums = pk.histogram(cts[slot_of[np.concatenate(rows or [np.zeros(0, np.int64)])]], groups,
                        total * len(nodes)).values
    m = pk.modulus
    out = []
    for i in range(len(nodes)):
        cand: list[mpz] = []
        for j in range(len(bin_offsets) - 1):
            lo, hi = i * total + int(bin_offsets[j]), i * total + int(bin_offsets[j + 1])
            if hi - lo < 2:  # a constant feature: no candidate split
                continue
            acc = sums[lo]
            cand.append(acc)
            for c in sums[lo + 1 : hi - 1]:  # the last bin is no candidate (everything left)
                acc = acc * c % m
                cand.append(acc)
        out.append(cand)
    return out


# -- prediction ---------------------------------------------------------------------------


def predict_guest(link: Link, peer: str, model: SecureBoostGuestModel, X: np.ndarray) -> np.ndarray:
    """Scores (probabilities) for the aligned rows; the host answers its own nodes."""
    X = check_features(X, "guest features") if len(X) >= 10 else np.asarray(X, dtype=np.float64)
    n = len(X)
    agree(link, peer, "guest", ALGORITHM + "-predict", {"model_id": model.model_id}, n, step=f"{PREFIX}/predict")
    n_host = sum(1 for t in model.trees for nd in t.nodes.values() if nd["owner"] == "host")
    raw = link.recv_array(peer, f"{PREFIX}/directions", dtype=np.uint8, shape=(None, (n + 7) // 8))
    index = link.recv_json(peer, f"{PREFIX}/directions_index")
    if len(raw) != n_host or not isinstance(index, list) or len(index) != n_host:
        raise ProtocolError(f"peer '{peer}' answered {len(raw)} host nodes; the model has {n_host}")
    host_dir = {(int(e[0]), int(e[1])): _unpackbits(raw[i], n) for i, e in enumerate(index)}
    F = np.full(n, model.base_score)
    for t, tree in enumerate(model.trees):
        node = np.zeros(n, dtype=np.int32)
        for _ in range(MAX_DEPTH_LIMIT + 1):
            done = True
            for k in np.unique(node).tolist():
                nd = tree.nodes.get(k)
                if nd is None:
                    raise ProtocolError(f"model tree {t} has no node {k}")
                if nd["owner"] == "leaf":
                    continue
                done = False
                rows = node == k
                if nd["owner"] == "guest":
                    left = X[:, nd["feature"]] < nd["threshold"]
                else:
                    if (t, k) not in host_dir:
                        raise ProtocolError(f"peer '{peer}' did not answer node {k} of tree {t}")
                    left = host_dir[(t, k)]
                node = np.where(rows, np.where(left, 2 * k + 1, 2 * k + 2), node)
            if done:
                break
        leaf_w = np.zeros(max(tree.nodes) + 1)
        for k, nd in tree.nodes.items():
            if nd["owner"] == "leaf":
                leaf_w[k] = nd["weight"]
        F += leaf_w[node]
    return _sigmoid(F)


def predict_host(link: Link, peer: str, model: SecureBoostHostModel, X: np.ndarray) -> None:
    """Answer, for every row, the direction at each of the host's split nodes."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(model.feature_names):
        raise InputError(f"the model needs {len(model.feature_names)} host feature columns, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise InputError("host features contain missing values", hint="impute them as for training")
    agree(link, peer, "host", ALGORITHM + "-predict", {}, len(X), host_overrides={"model_id": model.model_id},
          step=f"{PREFIX}/predict")
    n = len(X)
    rows = [_packbits(X[:, e["feature"]] < e["threshold"]) for e in model.lookup]
    data = np.stack(rows) if rows else np.zeros((0, (n + 7) // 8), dtype=np.uint8)
    link.send(peer, f"{PREFIX}/directions", data)
    link.send_json(peer, f"{PREFIX}/directions_index", [[e["tree"], e["node"]] for e in model.lookup])
