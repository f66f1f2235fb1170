"""``riskshare train``, ``predict``, ``iv`` and ``evaluate``: vertical federated learning between two nodes.

The guest (holds the label) and the host each run the same command with their
own --role, --input and --home; rows are aligned by PSI on --id-column inside
the command, and each side saves only its own part of the model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa

from ..data import normalise, read_table, write_table
from ..errors import InputError
from ..ml import jobs, metrics
from ..ml.common import TrainLog
from ..ml.data import load_table
from ..node.home import NodeHome
from . import main
from .identity import home_option


def _params(text: str | None, path: Path | None) -> dict[str, Any]:
    if text and path:
        raise InputError("give --params or --params-file, not both")
    if path:
        text = path.read_text()
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--params is not valid JSON: {exc}", hint='e.g. --params \'{"n_trees": 30}\'') from None
    if not isinstance(doc, dict):
        raise InputError("--params must be a JSON object")
    return doc


def _echo(line: str) -> None:
    click.echo(f"  {line}", err=True)


peer_option = click.option("--peer", "peer_name", required=True, help="The pinned peer to run with.")
role_option = click.option("--role", type=click.Choice(["guest", "host"]), required=True,
                           help="guest: holds the label; host: holds features only.")
input_option = click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                            help="CSV or Parquet file with this party's rows.")
id_option = click.option("--id-column", required=True, help="Column with the customer ID both parties share.")
features_option = click.option("--features", default=None,
                               help="Comma-separated feature columns (default: every column but the ID and label).")
timeout_option = click.option("--timeout", default=600.0, show_default=True,
                              help="Seconds to wait for the peer at each step.")
csv_options = [click.option("--delimiter", default=None, help="CSV delimiter (default: detected)."),
               click.option("--encoding", default="auto", show_default=True, help="auto, utf-8, gbk or gb18030.")]


def _csv(fn):
    for opt in reversed(csv_options):
        fn = opt(fn)
    return fn


def _split(features: str | None) -> list[str] | None:
    return [f.strip() for f in features.split(",") if f.strip()] if features else None


@main.command()
@home_option
@peer_option
@role_option
@click.option("--algorithm", type=click.Choice(sorted(jobs.ALGORITHMS)), required=True)
@input_option
@id_option
@click.option("--label", default=None, help="The 0/1 label column (guest only).")
@features_option
@click.option("--params", "params_text", default=None, help="Training parameters as JSON (host: only to pin values).")
@click.option("--params-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--model-out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for this party's model part (each run adds a new version).")
@_csv
@timeout_option
def train(home: Path, peer_name: str, role: str, algorithm: str, input_path: Path, id_column: str,
          label: str | None, features: str | None, params_text: str | None, params_file: Path | None,
          model_out: Path, delimiter: str | None, encoding: str, timeout: float) -> None:
    """Train a model with the peer; save this party's part of it.

    Both sides run this command (either may start first). The guest passes
    --label and the training --params; the host may pass --params to insist on
    values (a mismatch stops both sides before any data moves).
    """
    if role == "host" and label:
        raise InputError("the host has no label: leave out --label")
    if role == "guest" and not label:
        raise InputError("the guest must name its label column with --label")
    params = _params(params_text, params_file)
    node = NodeHome.open(home)
    node.peer(peer_name)
    table = load_table(input_path, id_column, label=label, features=_split(features), delimiter=delimiter,
                       encoding=encoding, require_label=role == "guest")
    click.echo(f"{input_path}: {len(table.ids)} rows, {len(table.feature_names)} features", err=True)
    log = TrainLog(echo=_echo)
    with node.open_link([peer_name], timeout=timeout) as link:
        part, rows, summary = jobs.train(link, peer_name, role, algorithm, table, params, log=log)
    version = jobs.save(model_out, role, algorithm, part, peer=peer_name, summary={**summary, "history": log.history})
    click.echo(f"trained {algorithm} on {summary['rows']} shared rows in {log.history[-1]['elapsed_s']:.1f} s; "
               f"this party's part saved to {version}")


@main.command()
@home_option
@peer_option
@role_option
@click.option("--model", "model_path", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="This party's model directory (the newest version is used) or one version in it.")
@input_option
@id_option
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Guest: where to write the scores (columns: ID, score).")
@_csv
@timeout_option
def predict(home: Path, peer_name: str, role: str, model_path: Path, input_path: Path, id_column: str,
            output: Path | None, delimiter: str | None, encoding: str, timeout: float) -> None:
    """Score the rows both parties hold; the scores go to the guest only."""
    if role == "guest" and output is None:
        raise InputError("the guest receives the scores: give --output scores.csv")
    node = NodeHome.open(home)
    node.peer(peer_name)
    manifest, part = jobs.load(model_path, role)
    table = load_table(input_path, id_column, features=list(part.feature_names), delimiter=delimiter,
                       encoding=encoding)
    started = time.monotonic()
    with node.open_link([peer_name], timeout=timeout) as link:
        scores, rows = jobs.predict(link, peer_name, role, manifest, part, table)
    seconds = time.monotonic() - started
    if role == "guest":
        assert scores is not None and output is not None
        write_table(pa.table({id_column: pa.array(rows.raw_ids, type=pa.string()),
                              "score": pa.array(scores, type=pa.float64())}), output)
        click.echo(f"scored {len(scores)} shared rows in {seconds:.1f} s; wrote {output}")
    else:
        click.echo(f"answered the peer's scoring of {len(rows.ids)} shared rows in {seconds:.1f} s")


@main.command("iv")
@home_option
@peer_option
@role_option
@input_option
@id_option
@click.option("--label", default=None, help="The 0/1 label column (guest only).")
@features_option
@click.option("--params", "params_text", default=None,
              help='JSON, e.g. {"max_bin": 10, "min_bin_count": 50, "iv_threshold": 0.02, "share_woe": false}.')
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as JSON (bins, counts, WOE, IV) here.")
@_csv
@timeout_option
def iv(home: Path, peer_name: str, role: str, input_path: Path, id_column: str, label: str | None,
       features: str | None, params_text: str | None, output: Path | None, delimiter: str | None, encoding: str,
       timeout: float) -> None:
    """WOE and information value of both parties' features (labels stay encrypted)."""
    if role == "guest" and not label:
        raise InputError("the guest must name its label column with --label")
    node = NodeHome.open(home)
    node.peer(peer_name)
    table = load_table(input_path, id_column, label=label, features=_split(features), delimiter=delimiter,
                       encoding=encoding, require_label=role == "guest")
    started = time.monotonic()
    with node.open_link([peer_name], timeout=timeout) as link:
        report, rows = jobs.information_value(link, peer_name, role, table, _params(params_text, None))
    click.echo(f"{'feature':<24} {'owner':<6} {'IV':>8} {'bins':>5}  selected")
    for row in report.table():
        click.echo(f"{row['feature']:<24} {row['owner']:<6} {row['iv']:>8.4f} {row['bins']:>5}  "
                   f"{'yes' if row['selected'] else 'no'}")
    if output:
        from ..data import atomic_output

        with atomic_output(output) as tmp:
            tmp.write_text(json.dumps(report.to_json(), indent=2))
        click.echo(f"wrote {output}", err=True)
    click.echo(f"{len(rows.ids)} shared rows, {time.monotonic() - started:.1f} s", err=True)


@main.command()
@click.option("--scores", "scores_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id-column", default="id", show_default=True)
@click.option("--score-column", default="score", show_default=True)
@click.option("--label-column", default="y", show_default=True)
@click.option("--threshold", default=0.5, show_default=True, help="Score at or above which a row counts as positive.")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Another scores file: report the population stability index against it.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report (curves included) as JSON.")
def evaluate(scores_path: Path, labels_path: Path, id_column: str, score_column: str, label_column: str,
             threshold: float, baseline_path: Path | None, as_json: bool) -> None:
    """AUC, KS, lift and gain by decile, confusion matrix (and PSI) of a scores file against labels."""
    scores_t = read_table(scores_path, string_columns=[id_column], required_columns=[id_column, score_column])
    labels_t = read_table(labels_path, string_columns=[id_column], required_columns=[id_column, label_column])
    s_ids = normalise(scores_t[id_column]).to_pylist()
    l_ids = normalise(labels_t[id_column]).to_pylist()
    label_of = dict(zip(l_ids, labels_t[label_column].to_pylist()))
    pairs = [(label_of[i], s) for i, s in zip(s_ids, scores_t[score_column].to_pylist()) if i in label_of]
    if not pairs:
        raise InputError("no ID of the scores file appears in the labels file",
                         hint="check --id-column and that both files cover the same customers")
    if any(lbl is None or s is None for lbl, s in pairs):
        raise InputError("some matched rows have an empty score or label")
    y = np.array([p[0] for p in pairs], dtype=np.float64)
    s = np.array([p[1] for p in pairs], dtype=np.float64)
    report = metrics.report(y, s, threshold, curve_points=101 if as_json else 0)
    report["matched"] = len(pairs)
    report["unmatched_scores"] = len(s_ids) - len(pairs)
    if baseline_path:
        base = read_table(baseline_path, required_columns=[score_column])
        report["psi"] = metrics.psi(np.asarray(base[score_column].to_pylist(), dtype=np.float64), s)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    out = sys.stdout
    out.write(f"rows: {report['matched']} matched ({report['positives']} positive)"
              f"{'; ' + str(report['unmatched_scores']) + ' scores without a label' if report['unmatched_scores'] else ''}\n")
    out.write(f"AUC {report['auc']:.4f}   KS {report['ks']:.4f}")
    out.write(f"   PSI {report['psi']:.4f}\n" if "psi" in report else "\n")
    c = report["confusion"]
    out.write(f"at threshold {c['threshold']:g}: TP {c['tp']}  FP {c['fp']}  FN {c['fn']}  TN {c['tn']}  "
              f"precision {c['precision']:.3f}  recall {c['recall']:.3f}\n")
    out.write(f"{'decile':>6} {'rows':>7} {'pos':>6} {'rate':>7} {'lift':>6} {'cum gain':>9}\n")
    for r in report["deciles"]:
        out.write(f"{r['decile']:>6} {r['count']:>7} {r['positives']:>6} {r['rate']:>7.3f} {r['lift']:>6.2f} "
                  f"{r['cumulative_gain']:>9.3f}\n")
