//! Unit tests of the normalizers on small inline records; the golden tests
//! over real-shaped fixture files are in `tests/normalize_golden.rs`.
