"""Losses that are not classification heads: DDL (and later triplet, distillation)."""

from .ddl import DDLLoss, DDLOutput, hardest_negatives, histogram_nodes, kl_divergence, soft_histogram

__all__ = ["DDLLoss", "DDLOutput", "hardest_negatives", "histogram_nodes", "kl_divergence", "soft_histogram"]
