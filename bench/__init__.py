"""Benchmarks against Hugging Face transformers and TransformerLens (see bench/README.md)."""
