"""The node's HTTP API: ``/api/v1`` for users, ``/peer/v1`` for pinned peers."""
