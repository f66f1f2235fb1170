"""The ``riskshare`` command.

Each command group lives in its own module and registers itself on :data:`main`.
Errors a user can cause print one line (``error: …``) and exit non-zero; only
bugs print a traceback, and only with ``RISKSHARE_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import RiskshareError
from ..process import tune_for_bulk_arrays

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


# Command -> the module that defines it. Modules are imported only when their command runs, so
# `riskshare psi` does not pay for importing the node service, the web stack and the ML code.
COMMANDS = {
    "init": "identity", "identity": "identity", "peer": "identity",
    "psi": "psi", "psi-set": "psi",
    "pir": "pir",
    "train": "ml", "predict": "ml", "iv": "ml", "evaluate": "ml",
    "node": "node", "user": "users", "table": "tables", "grant": "grants", "approvals": "grants",
    "job": "jobs", "schedule": "jobs", "audit": "audit",
    "synth": "scenarios", "demo": "scenarios",
}
# Commands that run one bulk protocol and exit: see riskshare.process.
BULK_COMMANDS = {"psi", "psi-set", "pir"}


class RiskshareGroup(click.Group):
    """Turns riskshare errors into one clear line and an exit code; loads command modules on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if cmd_name in BULK_COMMANDS and ctx.resilient_parsing is False:
                tune_for_bulk_arrays()
            importlib.import_module(f"{__name__}.{COMMANDS[cmd_name]}")  # registers its commands on `main`
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RiskshareError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: say so, briefly
            if os.environ.get("RISKSHARE_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (this is a bug; set RISKSHARE_DEBUG=1 for the traceback)",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)


@click.group(cls=RiskshareGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="riskshare")
@click.option("-v", "--verbose", count=True, help="Log more (repeat for debug output).")
def main(verbose: int) -> None:
    """riskshare: privacy-preserving risk-information sharing between institutions."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
