"""Vertical federated learning: binning, metrics, WOE/IV, hetero logistic regression, SecureBoost.

Protocol functions (one per role, over a :class:`~riskshare.net.Link`) live in
:mod:`.woe`, :mod:`.lr` and :mod:`.secureboost`; :mod:`.estimators` wraps both
roles in scikit-learn-style classes for one process; :mod:`.model` saves each
party's own part of a trained model.
"""
