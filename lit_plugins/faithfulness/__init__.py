"""Salience faithfulness (LIT-free math): erasure metrics (comprehensiveness, sufficiency,
AOPC, decision flip, Kendall's τ with leave-one-out), summaries with bootstrap intervals."""
