"""The node's database: engine, sessions, migrations and models."""

from .db import Database, default_database_url, utcnow
from . import models

__all__ = ["Database", "default_database_url", "utcnow", "models"]
