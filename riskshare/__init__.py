"""riskshare: privacy-preserving risk-information sharing between financial institutions."""

__version__ = "0.1.0"


def __getattr__(name: str):  # riskshare.Client without importing httpx for every command
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'riskshare' has no attribute {name!r}")
