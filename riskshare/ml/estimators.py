"""scikit-learn-style estimators that run both parties in one process (notebooks, tests, benchmarks).

>>> from riskshare.ml.estimators import HeteroSecureBoost
>>> model = HeteroSecureBoost(n_trees=30, max_depth=3).fit(X_guest, y, X_host)
>>> proba = model.predict_proba(X_guest_new, X_host_new)[:, 1]

Both roles run the same protocol functions as two institutions' nodes, over
an in-memory link in two threads; rows of ``X_guest`` and ``X_host`` must
already be aligned (same customer in the same row). Each side's part of the
model stays in its own attribute (``guest_model_`` / ``host_model_``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from ..net import MemoryHub
from . import lr as lr_protocol
from . import secureboost as sb_protocol
from . import woe as woe_protocol
from .common import TrainLog

GUEST, HOST = "guest", "host"


def run_pair(guest_fn: Callable[[Any], Any], host_fn: Callable[[Any], Any], *, timeout: float = 3600.0) -> tuple[Any, Any]:
    """Run ``guest_fn(link)`` here and ``host_fn(link)`` in a thread over an in-memory link; return both results.

    The first side to fail closes the link (so the other stops waiting) and its error is the one raised.
    """
    hub = MemoryHub([GUEST, HOST], timeout=timeout)
    out: dict[str, Any] = {}
    lock = threading.Lock()

    def failed(exc: BaseException) -> None:
        with lock:
            out.setdefault("error", exc)
        hub.close()

    def host() -> None:
        try:
            out["host"] = host_fn(hub[HOST])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failed(exc)

    thread = threading.Thread(target=host, name="riskshare-host", daemon=True)
    thread.start()
    try:
        out["guest"] = guest_fn(hub[GUEST])
    except BaseException as exc:  # noqa: BLE001
        failed(exc)
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["guest"], out["host"]


def _check_aligned(X_guest: Any, X_host: Any) -> tuple[np.ndarray, np.ndarray]:
    Xg, Xh = np.asarray(X_guest, dtype=np.float64), np.asarray(X_host, dtype=np.float64)
    if len(Xg) != len(Xh):
        raise ValueError(f"X_guest has {len(Xg)} rows and X_host {len(Xh)}: rows must be aligned")
    return Xg, Xh


class _HeteroEstimator:
    _protocol: Any
    _params_cls: Any

    def __init__(self, verbose: bool = False, **params: Any) -> None:
        self.params = self._params_cls.from_dict(params).to_dict()
        self.verbose = verbose

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**self.params, "verbose": self.verbose}

    def set_params(self, **params: Any) -> "_HeteroEstimator":
        self.verbose = params.pop("verbose", self.verbose)
        self.params = self._params_cls.from_dict({**self.params, **params}).to_dict()
        return self

    def fit(self, X_guest: Any, y: Any, X_host: Any, *, guest_feature_names: list[str] | None = None,
            host_feature_names: list[str] | None = None) -> "_HeteroEstimator":
        Xg, Xh = _check_aligned(X_guest, X_host)
        log = TrainLog(echo=print if self.verbose else None)
        proto = self._protocol
        self.guest_model_, self.host_model_ = run_pair(
            lambda link: proto.train_guest(link, HOST, Xg, np.asarray(y), self.params,
                                           feature_names=guest_feature_names, log=log),
            lambda link: proto.train_host(link, GUEST, Xh, {}, feature_names=host_feature_names),
        )
        self.history_ = log.history
        return self

    def predict_proba(self, X_guest: Any, X_host: Any) -> np.ndarray:
        Xg, Xh = _check_aligned(X_guest, X_host)
        proto = self._protocol
        p, _ = run_pair(lambda link: proto.predict_guest(link, HOST, self.guest_model_, Xg),
                        lambda link: proto.predict_host(link, GUEST, self.host_model_, Xh))
        return np.c_[1 - p, p]

    def predict(self, X_guest: Any, X_host: Any, threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(X_guest, X_host)[:, 1] >= threshold).astype(np.int8)


class HeteroLogisticRegression(_HeteroEstimator):
    """Two-party logistic regression (HE + secret sharing, no third party); see :mod:`riskshare.ml.lr`."""

    _protocol = lr_protocol
    _params_cls = lr_protocol.LRParams

    @property
    def coef_(self) -> np.ndarray:
        """Both parties' weights side by side — only available here because both run in this process."""
        return np.r_[self.guest_model_.weights, self.host_model_.weights]

    @property
    def intercept_(self) -> float:
        return self.guest_model_.intercept


class HeteroSecureBoost(_HeteroEstimator):
    """SecureBoost gradient-boosted trees; see :mod:`riskshare.ml.secureboost`."""

    _protocol = sb_protocol
    _params_cls = sb_protocol.SecureBoostParams


def information_value(X_guest: Any, y: Any, X_host: Any, *, guest_feature_names: list[str] | None = None,
                      host_feature_names: list[str] | None = None, **params: Any):
    """WOE/IV for both parties' features; returns (guest report, host report)."""
    Xg, Xh = _check_aligned(X_guest, X_host)
    return run_pair(
        lambda link: woe_protocol.iv_guest(link, HOST, Xg, np.asarray(y), params, feature_names=guest_feature_names),
        lambda link: woe_protocol.iv_host(link, GUEST, Xh, {}, feature_names=host_feature_names),
    )
