"""Verification evaluation: embeddings, 10-fold protocol, score metrics, plots."""
