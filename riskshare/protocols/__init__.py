"""Protocols: plain functions of (link, peer, role, inputs, parameters) returning outputs.

A protocol knows nothing of HTTP, databases, users or jobs; the same function
runs in one process over a memory link, between two processes over the
network link, and inside a node job.
"""
