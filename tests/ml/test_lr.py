"""Hetero LR: the shared-secret computation reaches the plaintext solution of the same estimator."""

from __future__ import annotations

import numpy as np
import pytest

from riskshare.errors import InputError, ParameterMismatch
from riskshare.ml import lr, metrics
from riskshare.ml.estimators import HeteroLogisticRegression, run_pair


def reference(Xg, Xh, y, l2):
    """Plaintext: guest-local logistic start, then the exact minimiser of the one-step Newton problem."""
    n = len(y)
    w0 = lr.fit_plain_logistic(Xg, y.astype(float), l2, 25, True)
    G = np.c_[Xg, np.ones(n)]
    z0 = G @ w0
    s0 = 1 / (1 + np.exp(-z0))
    beta = s0 * (1 - s0)
    c = s0 - beta * z0 - y
    A = np.c_[G, Xh]
    pen = np.full(A.shape[1], l2 * n)
    pen[Xg.shape[1]] = 0.0
    theta = np.linalg.solve(A.T @ (A * beta[:, None]) + np.diag(pen), -A.T @ c)
    return theta


@pytest.mark.slow
def test_federated_lr_matches_plaintext_solution(breast):
    Xg, Xh, y, tr, te = breast["Xg"], breast["Xh"], breast["y"], breast["train"], breast["test"]
    model = HeteroLogisticRegression(max_iter=80, tol=0.0, l2=1e-3).fit(Xg[tr], y[tr], Xh[tr])
    theta = reference(Xg[tr], Xh[tr], y[tr], 1e-3)
    dg = Xg.shape[1]
    fed = np.r_[model.guest_model_.weights, model.guest_model_.intercept, model.host_model_.weights]
    # breast's columns are strongly collinear across the parties: 80 plain iterations get within a few percent
    assert np.max(np.abs(fed - theta)) < 0.05 * max(1.0, np.max(np.abs(theta)))
    p = model.predict_proba(Xg[te], Xh[te])[:, 1]
    z_ref = np.c_[Xg[te], np.ones(len(te))] @ theta[: dg + 1] + Xh[te] @ theta[dg + 1:]
    assert np.max(np.abs(p - 1 / (1 + np.exp(-z_ref)))) < 0.05
    assert metrics.auc(y[te], p) == pytest.approx(metrics.auc(y[te], z_ref), abs=0.005)
    assert metrics.auc(y[te], p) > 0.97
    assert [h for h in model.history_ if "grad_norm" in h]  # progress was reported


def test_early_stopping_and_history(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    model = HeteroLogisticRegression(max_iter=100, tol=2e-2).fit(Xg, y, Xh)
    iters = [h for h in model.history_ if "grad_norm" in h]
    assert len(iters) < 100 and iters[-1]["grad_norm"] < 2e-2


def test_each_party_keeps_only_its_weights(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    model = HeteroLogisticRegression(max_iter=5).fit(Xg, y, Xh)
    assert len(model.guest_model_.weights) == Xg.shape[1]
    assert len(model.host_model_.weights) == Xh.shape[1]
    assert "intercept" not in model.host_model_.to_json()
    assert model.guest_model_.model_id == model.host_model_.model_id


def test_parameter_checks(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    with pytest.raises(ParameterMismatch, match="l2"):
        run_pair(lambda link: lr.train_guest(link, "host", Xg, y, {"l2": 0.1}),
                 lambda link: lr.train_host(link, "guest", Xh, {"l2": 0.2}))
    with pytest.raises(InputError, match="unknown"):
        lr.LRParams.from_dict({"epochs": 3})
    with pytest.raises(InputError, match="max_iter"):
        lr.LRParams.from_dict({"max_iter": 0})
    with pytest.raises(InputError, match="binary"):
        HeteroLogisticRegression().fit(Xg, np.where(y == 1, 1, -1), Xh)
