"""Lifeline's entrypoints: settings, composition root, CLI, HTTP API."""
