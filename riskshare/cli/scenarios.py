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
