"""The node: what each institution runs (home, storage, registry, grants, audit, jobs, API)."""
