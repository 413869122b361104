"""Durable, decoupled ingestion of gateway member events (see docs/architecture.md).

events.py: what is logged; log.py: the durable ingest log (group fsync, bounded);
applier.py: applying many members' work in batched statements; pipeline.py: the workers
that drain the log in order per member, and what they report (lag, backlog, drops).
"""
