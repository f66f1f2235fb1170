"""Jobs: small DAGs of components that two nodes run together, each its own side."""
