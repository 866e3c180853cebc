//! Synthetic audit corpora (placeholder until the generator lands).
