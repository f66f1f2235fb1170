"""``python -m riskshare`` runs the command line."""

from .cli import main

main(prog_name="riskshare")
