"""Datasets, verification pairs and transforms."""
