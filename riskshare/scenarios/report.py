"""The demo's report: one self-contained HTML file that opens offline.

Plots are drawn by matplotlib and inlined as SVG, so the file needs no CDN, no
JavaScript and no network. The report is rendered from ``summary.json`` alone,
so it can be re-rendered later (``riskshare report summary.json``).
"""

from __future__ import annotations

import datetime as dt
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none",
    "font.family": "sans-serif",  # chart text is English; svg.fonttype none lets the browser pick the face
})

COLOURS = {"federated": "#1f6feb", "broker_only": "#9a6700", "secureboost": "#8250df", "bank": "#1a7f37", "broker": "#cf222e"}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI','Noto Sans CJK SC',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}.muted{color:#59636e}.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{flex:1 1 480px}.chart svg{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em;border-radius:6px}
.learn{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4em .8em;margin:.6em 0}
.headline{font-size:1.15em;background:#ddf4ff;border-left:4px solid #1f6feb;padding:.5em .8em}
"""


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog so it inlines cleanly


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{_esc(c)}</td>" if i in numeric else f"<td>{_esc(c)}</td>"
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- charts --------------------------------------------------------------------------------------------
def overlap_chart(bars: list[tuple[str, int, str]]) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    labels = [b[0] for b in bars]
    values = [b[1] for b in bars]
    ax.barh(labels, values, color=[COLOURS.get(b[2], "#57606a") for b in bars])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("institutions")
    ax.set_title("Risk-list cross-check: list sizes and overlaps")
    return _svg(fig)


def roc_chart(models: dict[str, dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for name, m in models.items():
        pts = m.get("roc") or []
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{m.get('label', name)} (AUC {m['auc']:.3f})",
                    color=m.get("colour"), lw=1.6)
    ax.plot([0, 1], [0, 1], ls=":", color="#8c959f", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC on the same held-out rows")
    ax.legend(loc="lower right", fontsize=7.5, frameon=False)
    return _svg(fig)


def ks_chart(models: dict[str, dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for name, m in models.items():
        pts = m.get("ks_curve") or []
        if pts:
            x = [p[0] for p in pts]
            ax.plot(x, [p[1] - p[2] for p in pts], label=f"{m.get('label', name)} (KS {m['ks']:.3f})",
                    color=m.get("colour"), lw=1.6)
    ax.set_xlabel("share of population (highest scores first)")
    ax.set_ylabel("cumulative bad − cumulative good")
    ax.set_title("KS curves")
    ax.legend(loc="upper right", fontsize=7.5, frameon=False)
    return _svg(fig)


def iv_chart(iv: dict[str, dict[str, float]]) -> str:
    rows = sorted(((party, feat, val) for party, feats in iv.items() for feat, val in feats.items()),
                  key=lambda r: r[2])
    fig, ax = plt.subplots(figsize=(5.2, 0.28 * len(rows) + 1.0))
    ax.barh([f"{feat} ({party})" for party, feat, _ in rows], [v for *_, v in rows],
            color=[COLOURS.get(party, "#57606a") for party, *_ in rows])
    for threshold, label in ((0.02, "weak"), (0.1, "medium"), (0.3, "strong")):
        ax.axvline(threshold, ls=":", color="#8c959f", lw=0.8)
        ax.text(threshold, 1.0, f" {label}", fontsize=7, color="#59636e", va="bottom",
                transform=ax.get_xaxis_transform())
    ax.set_xlabel("information value (IV)")
    ax.set_title("Feature strength for the high-risk label, both parties", pad=14)
    return _svg(fig)


def monitoring_chart(days: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    labels = [d["day"][5:] for d in days]
    ax.bar(labels, [d["flagged_count"] for d in days], color=COLOURS["bank"], label="flagged borrowers")
    ax.set_ylabel("borrowers flagged")
    ax2 = ax.twinx()
    ax2.plot(labels, [d["flagged_amount"] / 1e6 for d in days], color=COLOURS["broker"], marker="o", lw=1.4,
             label="their large buys (million CNY)")
    ax2.set_ylabel("million CNY")
    ax2.spines["top"].set_visible(False)
    ax.set_title("Post-loan monitoring: hits per night")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return _svg(fig)


# -- sections --------------------------------------------------------------------------------------------
def _steps_table(steps: list[dict[str, Any]]) -> str:
    rows = [[s.get("name", ""), s.get("protocol", ""), s.get("job", "–"), f"{s.get('seconds', 0):.2f} s",
             _fmt_bytes(s.get("bytes_sent")), _fmt_bytes(s.get("bytes_received")), s.get("who_learns", "")]
            for s in steps]
    return _table(["step", "protocol", "job", "time", "sent", "received", "who learns what"], rows, {3, 4, 5})


def _commands(cmds: list[str]) -> str:
    if not cmds:
        return ""
    return "<h3>Reproduce with the CLI</h3><pre>" + _esc("\n".join(cmds)) + "</pre>"


def render(summary: dict[str, Any]) -> str:
    """The report as one HTML document."""
    sc = summary.get("scenarios", {})
    parts: list[str] = []
    started = summary.get("started", dt.datetime.now().isoformat(timespec="seconds"))
    parts.append(f"<h1>riskshare demo report</h1><p class='muted'>{_esc(started)} · "
                 f"{_esc(summary.get('mode', ''))} run · {summary.get('seconds', 0):.1f} s in all · "
                 f"riskshare {_esc(summary.get('version', ''))}</p>")
    parts.append(_overview(summary))

    if "1.1" in sc:
        s = sc["1.1"]
        bars = [
            ("bank's clients", s.get("bank_clients", 0), "bank"),
            ("broker's risk list", s.get("broker_risk_list", 0), "broker"),
            ("bank clients on broker's list", s.get("bank_overlap", 0), "bank"),
            ("broker's clients", s.get("broker_clients", 0), "broker"),
            ("bank's risk list", s.get("bank_risk_list", 0), "bank"),
            ("broker clients on bank's list", s.get("broker_overlap", 0), "broker"),
        ]
        pir_rows = [[k, "yes" if v else "no", (v or {}).get("risk_level", ""), (v or {}).get("reason", "")]
                    for k, v in (s.get("pir") or {}).items()]
        parts.append("<h2>1.1 Risk-list cross-check (PSI both ways, PIR look-ups)</h2>")
        parts.append("<div class='learn'>Each side learns only which of <em>its own</em> clients are on the other's "
                     "list. The list owner learns the asker's set size, nothing else. A PIR look-up tells the bank "
                     "the one record it asked for; the broker learns that a query happened, never which key.</div>")
        parts.append(f"<div class='charts'><div class='chart'>{overlap_chart(bars)}</div></div>")
        parts.append(_steps_table(s.get("steps", [])))
        if pir_rows:
            parts.append("<h3>PIR look-ups from the bank into the broker's list</h3>")
            parts.append(_table(["key asked", "on the list", "risk level", "reason"], pir_rows))
        parts.append(_commands(s.get("commands", [])))

    if "1.2" in sc:
        s = sc["1.2"]
        models = s.get("models", {})
        for name, m in models.items():
            m.setdefault("colour", COLOURS.get(name.split("_")[-1] if "secureboost" in name else
                                               ("broker_only" if "broker" in name else "federated")))
        parts.append("<h2>1.2 Better high-risk-client model (PSI alignment, IV, hetero LR, SecureBoost)</h2>")
        headline = s.get("headline")
        if headline:
            parts.append(f"<p class='headline'>{_esc(headline)}</p>")
        parts.append("<div class='learn'>Raw features and labels never leave their owner. The bank sees neither "
                     "labels nor scores; the broker sees neither the bank's features nor its half of the model. "
                     "Each keeps its own part of the trained model; scores go to the broker.</div>")
        rows = [[m.get("label", n), f"{m['auc']:.4f}", f"{m['ks']:.4f}", m.get("rows_test", ""),
                 f"{m.get('seconds', 0):.1f} s"] for n, m in models.items()]
        parts.append(_table(["model", "holdout AUC", "holdout KS", "test rows", "training time"], rows, {1, 2, 3, 4}))
        charts = []
        if any(m.get("roc") for m in models.values()):
            charts.append(roc_chart(models))
            charts.append(ks_chart(models))
        if s.get("iv"):
            charts.append(iv_chart(s["iv"]))
        parts.append("<div class='charts'>" + "".join(f"<div class='chart'>{c}</div>" for c in charts) + "</div>")
        parts.append(_steps_table(s.get("steps", [])))
        parts.append(_commands(s.get("commands", [])))

    if "1.3" in sc:
        s = sc["1.3"]
        days = s.get("days", [])
        parts.append("<h2>1.3 Post-loan monitoring (nightly PSI and PSI-sum)</h2>")
        parts.append("<div class='learn'>Only the bank receives results: which of its recent borrowers bought "
                     f"more than {s.get('threshold', 0):,.0f} CNY of stock that day, and the total. The broker "
                     "learns the size of the bank's borrower list and nothing else.</div>")
        if days:
            parts.append(f"<div class='charts'><div class='chart'>{monitoring_chart(days)}</div></div>")
            rows = [[d["day"], d.get("recent_borrowers", ""), d["flagged_count"], f"{d['flagged_amount']:,.2f}",
                     d.get("job", "")] for d in days]
            parts.append(_table(["night", "recent borrowers", "flagged", "their large buys (CNY)", "job"], rows, {1, 2, 3}))
        if s.get("new_target"):
            parts.append(f"<p>Flagged borrowers were written to the bank's table <code>{_esc(s['new_target'])}</code> "
                         "as a new target variable for its own models.</p>")
        parts.append(_steps_table(s.get("steps", [])))
        parts.append(_commands(s.get("commands", [])))

    if "2.1" in sc:
        s = sc["2.1"]
        parts.append("<h2>2.1 Group risk list (subsidiary → head office, PIR)</h2>")
        parts.append("<div class='learn'>The subsidiary learns the records for the keys it asked, and that the "
                     "others are not listed; head office learns how many keys were asked, never which.</div>")
        single = s.get("single") or {}
        if single:
            rec = single.get("record")
            shown = "; ".join(f"{k}: {v}" for k, v in rec.items()) if rec else "not on the group list"
            parts.append(f"<p>One key: <code>{_esc(single.get('key'))}</code> → {_esc(shown)}</p>")
        batch = s.get("batch") or {}
        if batch:
            found = sum(1 for v in batch.values() if v)
            parts.append(f"<p>Batch: {len(batch)} keys in one round, {found} found on the group list.</p>")
        parts.append(_steps_table(s.get("steps", [])))
        parts.append(_commands(s.get("commands", [])))

    parts.append(_audit(summary))
    parts.append(_checks(summary))
    body = "\n".join(parts)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>riskshare demo report</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>")


def _overview(summary: dict[str, Any]) -> str:
    nodes = summary.get("nodes", {})
    rows = [[name, n.get("role", ""), n.get("address", ""), n.get("fingerprint", "")[:23] + "…"]
            for name, n in nodes.items()]
    out = "<h2>Nodes</h2>" + _table(["node", "institution", "address", "certificate (SHA-256)"], rows)
    approval = summary.get("approval")
    if approval:
        out += (f"<p>Approval: job <code>{_esc(approval.get('job'))}</code> asked for "
                f"<em>{_esc(approval.get('operation'))}</em> on <code>{_esc(approval.get('table'))}</code> with no grant "
                f"covering it; it waited as pending approval until {_esc(approval.get('approved_by'))} approved it "
                f"({approval.get('waited_seconds', 0):.1f} s).</p>")
    return out


def _audit(summary: dict[str, Any]) -> str:
    audit = summary.get("audit", {})
    if not audit:
        return ""
    rows = [[node, a.get("records", ""), "verified" if a.get("verified") else "FAILED",
             ", ".join(f"{k}: {v}" for k, v in sorted((a.get("actions") or {}).items()))] for node, a in audit.items()]
    return "<h2>Audit trail</h2>" + _table(["node", "records", "hash chain and signatures", "actions"], rows, {1})


def _checks(summary: dict[str, Any]) -> str:
    checks = summary.get("checks", {})
    if not checks:
        return ""
    rows = [[name, "pass" if ok else "FAIL"] for name, ok in checks.items()]
    return "<h2>Checks against the generator's ground truth</h2>" + _table(["check", "result"], rows)
