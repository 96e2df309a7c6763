"""Render functions for the result tables of README.md and docs/: one JSON in, one markdown table out.

``benchmarks/docs_tables.py`` names each table, its JSON files and its function here.
"""
