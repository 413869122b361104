"""Lifeline's domain: lifecycle rules, application services and persistence.

Nothing in this package imports discord.py, aiohttp or the web framework.
"""
