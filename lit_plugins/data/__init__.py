"""LIT datasets: CSV/TSV/JSONL and HF `datasets` loaders, and the bundled sentiment examples."""
