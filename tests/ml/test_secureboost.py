"""SecureBoost: lossless against the same boosting on joined data, leakage-relevant checks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from riskshare.errors import InputError, ParameterMismatch
from riskshare.ml import metrics
from riskshare.ml import secureboost as sb
from riskshare.ml.estimators import HeteroSecureBoost, run_pair

PARAMS = {"n_trees": 4, "max_depth": 3, "learning_rate": 0.3, "max_bin": 16, "seed": 1}


def fit_predict(Xg, Xh, y, train, test, **params):
    model = HeteroSecureBoost(**{**PARAMS, **params}).fit(Xg[train], y[train], Xh[train])
    return model, model.predict_proba(Xg[test], Xh[test])[:, 1]


def test_federated_trees_equal_joined_data_trees(breast):
    """Splitting the columns between two parties changes nothing: same trees as one party holding all."""
    Xg, Xh, y, tr, te = breast["Xg"], breast["Xh"], breast["y"], breast["train"], breast["test"]
    fed, p_fed = fit_predict(Xg, Xh, y, tr, te)
    joined, p_joined = fit_predict(np.c_[Xg, Xh], np.ones((len(y), 1)), y, tr, te)
    assert np.max(np.abs(p_fed - p_joined)) < 1e-6
    host_nodes = sum(nd["owner"] == "host" for t in fed.guest_model_.trees for nd in t.nodes.values())
    assert host_nodes > 0 and len(fed.host_model_.lookup) == host_nodes
    assert metrics.auc(y[te], p_fed) > 0.95


def test_constant_host_columns_offer_no_split(breast):
    """A host column with one value has one bin and no candidate split; the model is unchanged."""
    Xg, Xh, y, tr, te = breast["Xg"], breast["Xh"], breast["y"], breast["train"], breast["test"]
    const = np.full((len(y), 1), 3.0)
    _, p_plain = fit_predict(Xg, Xh, y, tr, te, n_trees=2)
    _, p_const = fit_predict(Xg, np.c_[const, Xh[:, :4], const, Xh[:, 4:]], y, tr, te, n_trees=2)
    assert np.max(np.abs(p_plain - p_const)) < 1e-9


def test_guest_model_holds_no_host_thresholds(breast):
    Xg, Xh, y, tr = breast["Xg"], breast["Xh"], breast["y"], breast["train"]
    model = HeteroSecureBoost(**PARAMS).fit(Xg[tr], y[tr], Xh[tr])
    for tree in model.guest_model_.trees:
        for nd in tree.nodes.values():
            if nd["owner"] == "host":
                assert set(nd) <= {"owner", "gain"}
    # the host's part has thresholds but no leaf weights or labels
    doc = model.host_model_.to_json()
    assert "trees" not in doc and "base_score" not in doc
    assert all({"tree", "node", "feature", "threshold"} == set(e) for e in doc["lookup"])


def test_first_tree_on_guest_features_only_and_subsample(breast):
    Xg, Xh, y, tr, te = breast["Xg"], breast["Xh"], breast["y"], breast["train"], breast["test"]
    model, p = fit_predict(Xg, Xh, y, tr, te, first_tree_guest_only=True, subsample=0.8)
    assert all(nd["owner"] != "host" for nd in model.guest_model_.trees[0].nodes.values())
    assert all(e["tree"] != 0 for e in model.host_model_.lookup)
    assert metrics.auc(y[te], p) > 0.9


def test_paillier_gives_the_same_model(breast):
    Xg, Xh, y, tr, te = breast["Xg"], breast["Xh"], breast["y"], breast["train"], breast["test"]
    _, p_ou = fit_predict(Xg, Xh, y, tr, te, n_trees=2)
    _, p_pa = fit_predict(Xg, Xh, y, tr, te, n_trees=2, he_scheme="paillier")
    assert np.max(np.abs(p_ou - p_pa)) < 1e-9


def test_parameters_must_agree(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    with pytest.raises(ParameterMismatch, match="max_depth"):
        run_pair(lambda link: sb.train_guest(link, "host", Xg, y, PARAMS),
                 lambda link: sb.train_host(link, "guest", Xh, {"max_depth": 5}))
    with pytest.raises(ParameterMismatch, match="row counts"):
        run_pair(lambda link: sb.train_guest(link, "host", Xg, y, PARAMS),
                 lambda link: sb.train_host(link, "guest", Xh[:-1], {}))


@pytest.mark.parametrize("params, message", [
    ({"n_trees": 0}, "n_trees"), ({"max_depth": 20}, "max_depth"), ({"learning_rate": 2}, "learning_rate"),
    ({"subsample": 0}, "subsample"), ({"he_scheme": "rsa"}, "he_scheme"), ({"trees": 3}, "unknown"),
])
def test_invalid_parameters(params, message):
    with pytest.raises(InputError, match=message):
        sb.SecureBoostParams.from_dict(params)


def test_bad_labels_and_features_are_refused(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    with pytest.raises(InputError, match="binary"):
        HeteroSecureBoost(**PARAMS).fit(Xg, y * 2, Xh)
    with pytest.raises(InputError, match="one class"):
        HeteroSecureBoost(**PARAMS).fit(Xg, np.zeros_like(y), Xh)
    bad = Xh.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="missing"):
        HeteroSecureBoost(**PARAMS).fit(Xg, y, bad)
    with pytest.raises(InputError, match="too few rows"):
        HeteroSecureBoost(**PARAMS).fit(Xg[:5], y[:5], Xh[:5])
