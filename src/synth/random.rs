//! The generator's randomness: a small splitmix64 PRNG, stable text
//! hashes, and the alphabets and encodings that ids and keys are drawn from.
//! Kept in-house so the same seed gives the same bytes on every platform
//! and with every dependency version.

/// splitmix64: tiny, fast, good enough, and the same on every platform.
#[derive(Clone, Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x5EED_7A11_3A2D_0001))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub(super) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `low..=high`.
    pub(super) fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1).max(1) as u64) as i64
    }

    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    pub(super) fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    pub(super) fn hex(&mut self, len: usize) -> String {
        self.chars(HEX, len)
    }

    pub(super) fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// The splitmix64 finalizer: a bijection on u64.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, then mixed: a stable hash of a text.
pub(super) fn hash_text(text: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash)
}

const HEX: &[u8] = b"0123456789abcdef";
pub(super) const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub(super) const B36: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub(super) const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub(super) const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `value` in base `alphabet.len()`, exactly `len` digits (injective when
/// `alphabet.len()^len` exceeds every value encoded).
pub(super) fn encode(mut value: u64, alphabet: &[u8], len: usize) -> String {
    let base = alphabet.len() as u64;
    (0..len)
        .map(|_| {
            let digit = (value % base) as usize;
            value /= base;
            char::from(alphabet[digit])
        })
        .collect()
}

/// Fisher–Yates, drawing from `rng`.
pub(super) fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for index in (1..items.len()).rev() {
        let other = rng.index(index + 1);
        items.swap(index, other);
    }
}

/// `len` decimal digits, the first not 0 (account ids, uins).
pub(super) fn digits(rng: &mut Rng, len: usize) -> String {
    let mut text = String::with_capacity(len);
    text.push(char::from(b'1' + rng.below(9) as u8));
    for _ in 1..len {
        text.push(char::from(b'0' + rng.below(10) as u8));
    }
    text
}
