import re

import numpy as np

from riskshare.scenarios import report


def sample_summary():
    x = np.linspace(0, 1, 30)
    model = lambda auc, p: {"label": f"m{auc}", "auc": auc, "ks": auc - 0.3, "roc": [[a, a ** p] for a in x],
                            "ks_curve": [[a, a ** p, a] for a in x], "seconds": 1.0, "rows_test": 100}
    return {
        "mode": "small", "seconds": 12.5, "version": "0.1.0",
        "nodes": {"bank": {"role": "bank", "address": "127.0.0.1:1", "fingerprint": "AA:" * 32}},
        "approval": {"job": "j-1", "operation": "psi", "table": "risk_list", "approved_by": "wang", "waited_seconds": 1},
        "scenarios": {
            "1.1": {"bank_clients": 10, "broker_risk_list": 5, "bank_overlap": 2, "broker_clients": 8,
                    "bank_risk_list": 3, "broker_overlap": 1, "pir": {"K1": {"risk_level": "高", "reason": "异常交易"}, "K2": None},
                    "steps": [{"name": "psi", "protocol": "ot", "job": "j-1", "seconds": 0.5, "bytes_sent": 2e6,
                               "bytes_received": 1e6, "who_learns": "bank: its overlap"}],
                    "commands": ["riskshare job psi --home bank --peer broker <script>"]},
            "1.2": {"headline": "uplift", "models": {"federated_lr": model(0.86, 0.4), "broker_only_lr": model(0.75, 0.6)},
                    "iv": {"bank": {"utilisation": 0.4}, "broker": {"turnover": 0.1}}},
            "1.3": {"threshold": 1e6, "days": [{"day": "2026-11-23", "flagged_count": 3, "flagged_amount": 5e6}],
                    "new_target": "monitoring_flags"},
            "2.1": {"single": {"key": "K1", "record": {"risk_level": "高"}}, "batch": {"K1": {"a": 1}, "K2": None}},
        },
        "audit": {"bank": {"records": 12, "verified": True, "actions": {"job.step": 4}}},
        "checks": {"intersections exact": True},
    }


def test_report_is_self_contained_and_escapes_text():
    html = report.render(sample_summary())
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") == 5  # overlaps, ROC, KS, IV, monitoring
    assert not re.search(r"""(src|href)=["']?https?://""", html)  # nothing fetched from the network
    assert "<script>" not in html  # the command shown is escaped, not markup
    assert "&lt;script&gt;" in html
    assert "AUC 0.860" in html and "异常交易" in html


def test_sections_are_optional():
    html = report.render({"scenarios": {}})
    assert "<svg" not in html and "riskshare demo report" in html
