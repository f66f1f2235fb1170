"""``riskshare synth``: realistic synthetic data for the scenarios."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..scenarios.synth import SCENARIOS, SynthConfig, generate
from . import main


@main.command()
@click.option("--scenario", "scenario", default="all", show_default=True,
              help=f"Which scenario's files to write: {', '.join(SCENARIOS)} or all.")
@click.option("--rows", default=SynthConfig.institutions, show_default=True, help="Number of institutions.")
@click.option("--labelled", default=None, type=int, help="Labelled broker clients for scenario 1.2 (default: rows / 5).")
@click.option("--days", default=SynthConfig.days, show_default=True, help="Simulated monitoring days (scenario 1.3).")
@click.option("--seed", default=SynthConfig.seed, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def synth(scenario: str, rows: int, labelled: int | None, days: int, seed: int, out: Path) -> None:
    """Write realistic synthetic data (valid USCCs, loan book, trading features, risk lists, trades)."""
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} is not empty", hint="choose a new --out directory")
    if days < 1:
        raise InputError("--days must be at least 1")
    chosen = SCENARIOS if scenario == "all" else tuple(s.strip() for s in scenario.split(","))
    cfg = SynthConfig(institutions=rows, labelled=labelled if labelled is not None else max(1, rows // 5),
                      days=days, seed=seed)
    truth = generate(out, cfg, chosen)
    click.echo(f"wrote {', '.join(chosen)} data for {rows} institutions to {out} (answers in {out / 'truth.json'})")
    if "1.1" in truth:
        t = truth["1.1"]
        click.echo(f"  1.1  bank clients {t['bank_clients']}, broker risk list {t['broker_risk_list']}, "
                   f"overlap {len(t['bank_clients_on_broker_list'])}")
    if "1.2" in truth:
        t = truth["1.2"]
        click.echo(f"  1.2  labelled {t['labelled']} ({t['positive_rate']:.1%} high-risk), "
                   f"{t['labelled_with_bank_features']} with bank features")
    if "1.3" in truth:
        flagged = sum(d["flagged_count"] for d in truth["1.3"]["days"])
        click.echo(f"  1.3  {len(truth['1.3']['days'])} days, {flagged} borrower-day hits over the threshold")
    if "2.1" in truth:
        click.echo(f"  2.1  group risk list {truth['2.1']['group_list']}, {len(truth['2.1']['batch'])} lookup keys")


@main.command()
@click.option("--small", is_flag=True, help="A quick look: ~6,000 institutions, 2,500 labelled, 3 nights.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where to put the nodes, data, summary.json and report.html (default: a new directory here).")
@click.option("--base-port", type=int, default=None,
              help="Listen on 127.0.0.1 ports N, N+1, N+2 (default: free ports).")
def demo(small: bool, out: Path | None, base_port: int | None) -> None:
    """Run the four scenarios on three local nodes (bank, broker, sub) and write a report."""
    import datetime as dt

    from ..demo import Demo

    if out is None:
        out = Path(f"riskshare-demo-{dt.datetime.now():%Y%m%d-%H%M%S}")
    summary = Demo(out, small=small, base_port=base_port, echo=click.echo).run()
    _print_summary(summary, out)
    if not all(summary["checks"].values()):
        raise SystemExit(1)


def _print_summary(summary: dict, out: Path) -> None:
    sc = summary["scenarios"]
    click.echo("")
    click.echo(f"{'scenario':<34}{'result':<58}{'time':>8}")
    click.echo("-" * 100)
    rows = [
        ("1.1 risk-list cross-check",
         f"bank {sc['1.1']['bank_overlap']} / broker {sc['1.1']['broker_overlap']} listed clients; "
         f"{sum(1 for v in sc['1.1']['pir'].values() if v)}/{len(sc['1.1']['pir'])} PIR hits", "1.1 risk-list cross-check"),
        ("1.2 high-risk-client model",
         f"AUC {sc['1.2']['models']['federated_lr']['auc']:.3f} federated vs "
         f"{sc['1.2']['models']['broker_only_lr']['auc']:.3f} broker-only (SB "
         f"{sc['1.2']['models']['federated_secureboost']['auc']:.3f})", "1.2 high-risk-client model"),
        ("1.3 post-loan monitoring",
         f"{sum(d['flagged_count'] for d in sc['1.3']['days'])} hits over {len(sc['1.3']['days'])} nights, "
         f"{sum(d['flagged_amount'] for d in sc['1.3']['days']) / 1e6:,.1f} M CNY", "1.3 post-loan monitoring"),
        ("2.1 group risk list",
         f"one key {'found' if sc['2.1']['single']['record'] else 'not found'}; batch "
         f"{sum(1 for v in sc['2.1']['batch'].values() if v)}/{len(sc['2.1']['batch'])} found", "2.1 group risk list"),
    ]
    for name, result, phase in rows:
        click.echo(f"{name:<34}{result:<58}{summary['phases'].get(phase, 0):>7.1f}s")
    click.echo("-" * 100)
    for check, ok in summary["checks"].items():
        click.echo(f"  {'pass' if ok else 'FAIL'}  {check}")
    click.echo(f"\n{summary['seconds']:.1f} s in all. Report: {out / 'report.html'}  Summary: {out / 'summary.json'}")
