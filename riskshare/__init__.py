"""riskshare: privacy-preserving risk-information sharing between financial institutions."""

__version__ = "0.1.0"
