//! The framer's fast path: whole blocks of a value at once.
//!
//! Inside an object or array, almost every byte only moves the string state,
//! the nesting depth, the line count and `Frame::nodes`. Those are computed
//! here 64 bytes at a time from bitmasks (bit `i` stands for byte `i` of the
//! block), the way simdjson's first stage does: one mask per kind of byte,
//! escaped quotes removed with carry arithmetic, the inside of strings as the
//! prefix XOR of the quotes. The scan stops before the first byte where the
//! state machine has something to decide, and `Framer::step` takes that byte:
//! - the close that ends the frame (or the record of a container);
//! - a `[` at depth 1 (the array of a `Records` / `traces` document);
//! - a `{` or `[` in column 0 (a new document, or the next record of an
//!   array written one record per line);
//! - a raw newline inside a string (a broken value);
//! - a backslash outside a string: the masks take every backslash for an
//!   escape inside a string, which only holds until the first one outside.
//!
//! Everything the scan consumes ends up exactly as `step` would have left it,
//! byte for byte (the unit tests compare the two on random input).

use super::{Framer, State};

/// Bitmasks of one block: bit `i` is set when byte `i` is of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Masks {
    quote: u64,
    backslash: u64,
    newline: u64,
    /// `:` and `,`: one more member or item.
    separator: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
}

const BLOCK: usize = 64;

/// Alternating bits, set on odd positions.
const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;

/// Bits below `count` (all of them at 64).
fn below(count: usize) -> u64 {
    if count >= BLOCK { !0 } else { (1u64 << count) - 1 }
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `bits`: with quotes
/// as input, the bytes from an opening quote up to (not including) its
/// closing quote.
fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

/// Escapes of a block, all its backslashes taken to be inside strings:
/// (bytes that are escaped, backslashes that escape the next byte).
/// `first_escaped` says whether the block's first byte is escaped by a
/// backslash that ended the last block. (simdjson's escape scanner.)
fn escapes(backslash: u64, first_escaped: bool) -> (u64, u64) {
    let first = u64::from(first_escaped);
    if backslash == 0 {
        return (first, 0);
    }
    // A run of backslashes escapes the byte after it when it is odd: the
    // subtraction ends each run on a bit whose parity tells its length.
    let potential = backslash & !first;
    let maybe_escaped = potential << 1;
    let code = (maybe_escaped | ODD_BITS).wrapping_sub(potential) ^ ODD_BITS;
    let escaped = code ^ (backslash | first);
    let escape = code & backslash;
    (escaped, escape)
}

impl Framer {
    /// Consume the longest start of `data` that only moves string state,
    /// depth, lines and nodes (see the module doc), as `step` would; returns
    /// how many bytes that was (0 when the first byte needs `step`), or
    /// `None` when the state is not one the scan knows.
    pub(super) fn scan(&mut self, data: &[u8]) -> Option<usize> {
        let State::Value { depth } = self.state else {
            return None;
        };
        // Where the close that ends the frame (or the record) leaves the depth.
        let floor = self.container.map_or(0, |container| container.at.depth);
        if depth <= floor || self.pending_container.is_some() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::detected() {
            // SAFETY: the CPU has what `scan_avx2` is compiled for (checked just above).
            return Some(unsafe { self.scan_avx2(data, depth, floor) });
        }
        Some(self.scan_with(data, depth, floor, portable::classify, prefix_xor))
    }

    /// `scan_with` compiled for AVX2 (and the carry-less multiplication and
    /// population count every AVX2 CPU has), the block work inlined.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,pclmulqdq,popcnt,bmi1")]
    fn scan_avx2(&mut self, data: &[u8], depth: u32, floor: u32) -> usize {
        self.scan_with(
            data,
            depth,
            floor,
            |block| avx2::classify(block),
            |bits| avx2::prefix_xor(bits),
        )
    }

    /// The scan, from `depth` until the close down to `floor` (at most),
    /// with `classify` making the masks of a block and `prefix_xor` as
    /// the function of that name.
    #[inline(always)]
    fn scan_with(
        &mut self,
        data: &[u8],
        mut depth: u32,
        floor: u32,
        classify: impl Fn(&[u8; BLOCK]) -> Masks,
        prefix_xor: impl Fn(u64) -> u64,
    ) -> usize {
        let mut in_string = self.in_string;
        let mut escape = self.escape;
        let mut line_start = self.at_line_start;
        let mut nodes = 0u32;
        let mut lines = 0u64;
        let mut consumed = 0;
        let mut padded = [0u8; BLOCK];
        while consumed < data.len() {
            let rest = &data[consumed..];
            let (block, valid) = match rest.first_chunk::<BLOCK>() {
                Some(block) => (block, BLOCK),
                None => {
                    // The end of `data` (the last round: it ends short of a
                    // block); zeros are of no kind.
                    padded[..rest.len()].copy_from_slice(rest);
                    (&padded, rest.len())
                }
            };
            let masks = classify(block);
            let (escaped, escapes_next) = escapes(masks.backslash, escape);
            let strings = prefix_xor(masks.quote & !escaped) ^ if in_string { !0 } else { 0 };
            let outside = !strings;
            let column_zero = masks.newline << 1 | u64::from(line_start);
            let events = (masks.newline & strings) | (masks.backslash & outside) | (masks.open & column_zero & outside);
            let mut stop = if events == 0 {
                valid
            } else {
                (events.trailing_zeros() as usize).min(valid)
            };
            let mut braces = (masks.open | masks.close) & outside & below(stop);
            while braces != 0 {
                let at = braces.trailing_zeros() as usize;
                braces &= braces - 1;
                if masks.open >> at & 1 == 1 {
                    if depth == 1 && block[at] == b'[' {
                        stop = at;
                        break;
                    }
                    depth += 1;
                } else {
                    if depth - 1 == floor {
                        stop = at;
                        break;
                    }
                    depth -= 1;
                }
            }
            let kept = below(stop);
            nodes = nodes.saturating_add((masks.separator & outside & kept).count_ones());
            // Newlines inside strings are events: those kept are all outside.
            lines += u64::from((masks.newline & kept).count_ones());
            consumed += stop;
            if stop > 0 {
                let last = stop - 1;
                in_string = strings >> last & 1 == 1;
                escape = escapes_next >> last & 1 == 1;
                line_start = masks.newline >> last & 1 == 1;
            }
            if stop < BLOCK {
                break;
            }
        }
        if consumed > 0 {
            self.push_slice(&data[..consumed]);
            self.offset += consumed as u64;
            self.line += lines;
            self.nodes = self.nodes.saturating_add(nodes);
            self.in_string = in_string;
            self.escape = escape;
            self.at_line_start = line_start;
            self.state = State::Value { depth };
        }
        consumed
    }
}

/// Word-at-a-time classification, for any CPU.
mod portable {
    use super::{BLOCK, Masks};

    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;

    /// The high bit of each byte of `word` that equals `byte` (exact: no
    /// borrow runs from one byte into the next).
    fn equal(word: u64, byte: u8) -> u64 {
        let diff = word ^ (ONES * u64::from(byte));
        !(((diff & LOW7) + LOW7) | diff) & HIGH
    }

    /// The high bits of the 8 bytes of `high`, gathered into the low 8 bits.
    fn gather(high: u64) -> u64 {
        (high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
    }

    pub(super) fn classify(block: &[u8; BLOCK]) -> Masks {
        let mut masks = Masks::default();
        for (index, chunk) in block.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            // `{` and `[` (`}` and `]`) differ only by 0x20.
            let lower = word | (ONES * 0x20);
            let shift = index * 8;
            masks.quote |= gather(equal(word, b'"')) << shift;
            masks.backslash |= gather(equal(word, b'\\')) << shift;
            masks.newline |= gather(equal(word, b'\n')) << shift;
            masks.separator |= gather(equal(word, b':') | equal(word, b',')) << shift;
            masks.open |= gather(equal(lower, b'{')) << shift;
            masks.close |= gather(equal(lower, b'}')) << shift;
        }
        masks
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK, Masks};
    use std::arch::x86_64::{
        __m256i, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set_epi64x, _mm_set1_epi8, _mm256_cmpeq_epi8,
        _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };

    /// Whether the CPU has what this module is compiled for.
    pub(super) fn detected() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1")
    }

    /// `super::prefix_xor` as one carry-less multiplication by all ones.
    #[target_feature(enable = "sse2,pclmulqdq")]
    pub(super) fn prefix_xor(bits: u64) -> u64 {
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, bits as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }

    #[target_feature(enable = "avx2")]
    fn equal(vector: __m256i, byte: u8) -> __m256i {
        _mm256_cmpeq_epi8(vector, _mm256_set1_epi8(byte as i8))
    }

    /// The 32-bit masks of two halves as one.
    #[target_feature(enable = "avx2")]
    fn join(low: __m256i, high: __m256i) -> u64 {
        let low = _mm256_movemask_epi8(low) as u32;
        let high = _mm256_movemask_epi8(high) as u32;
        u64::from(low) | u64::from(high) << 32
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn classify(block: &[u8; BLOCK]) -> Masks {
        let (low, high) = block.split_at(BLOCK / 2);
        // SAFETY: each half is 32 readable bytes; the load is unaligned.
        let (low, high) = unsafe {
            (
                _mm256_loadu_si256(low.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(high.as_ptr().cast::<__m256i>()),
            )
        };
        let separator = |vector| _mm256_or_si256(equal(vector, b':'), equal(vector, b','));
        // `{` and `[` (`}` and `]`) differ only by 0x20.
        let (low_lower, high_lower) = (
            _mm256_or_si256(low, _mm256_set1_epi8(0x20)),
            _mm256_or_si256(high, _mm256_set1_epi8(0x20)),
        );
        Masks {
            quote: join(equal(low, b'"'), equal(high, b'"')),
            backslash: join(equal(low, b'\\'), equal(high, b'\\')),
            newline: join(equal(low, b'\n'), equal(high, b'\n')),
            separator: join(separator(low), separator(high)),
            open: join(equal(low_lower, b'{'), equal(high_lower, b'{')),
            close: join(equal(low_lower, b'}'), equal(high_lower, b'}')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The masks by the definition, byte by byte.
    fn reference(block: &[u8; BLOCK]) -> Masks {
        let mut masks = Masks::default();
        for (at, byte) in block.iter().enumerate() {
            let bit = 1u64 << at;
            match byte {
                b'"' => masks.quote |= bit,
                b'\\' => masks.backslash |= bit,
                b'\n' => masks.newline |= bit,
                b':' | b',' => masks.separator |= bit,
                b'{' | b'[' => masks.open |= bit,
                b'}' | b']' => masks.close |= bit,
                _ => {}
            }
        }
        masks
    }

    fn block_of(bytes: &[u8]) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        block[..bytes.len()].copy_from_slice(bytes);
        block
    }

    /// Bytes of every kind, and the neighbours that differ from them by one bit.
    fn interesting() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(b"\"\\\n:,{}[]\x7B\x5B\x7D\x5D\x3B\x2D\x0B\x22\x5C".to_vec()),
            any::<u8>(),
        ]
    }

    proptest! {
        #[test]
        fn every_classifier_agrees_with_the_definition(bytes in prop::collection::vec(interesting(), BLOCK)) {
            let block = block_of(&bytes);
            let expected = reference(&block);
            prop_assert_eq!(portable::classify(&block), expected);
            #[cfg(target_arch = "x86_64")]
            if avx2::detected() {
                // SAFETY: the CPU has AVX2 (checked just above).
                prop_assert_eq!(unsafe { avx2::classify(&block) }, expected);
            }
        }

        #[test]
        fn escapes_agree_with_a_byte_walk(bits in any::<u64>(), first in any::<bool>()) {
            let (escaped, escape) = escapes(bits, first);
            let mut next_escaped = first;
            for at in 0..BLOCK {
                let backslash = bits >> at & 1 == 1;
                prop_assert_eq!(escaped >> at & 1 == 1, next_escaped, "escaped bit {}", at);
                let escapes_next = backslash && !next_escaped;
                prop_assert_eq!(escape >> at & 1 == 1, escapes_next, "escape bit {}", at);
                next_escaped = escapes_next;
            }
        }
    }

    #[test]
    fn prefix_xor_marks_the_inside_of_quotes() {
        let quotes = 1 << 2 | 1 << 5 | 1 << 9;
        assert_eq!(prefix_xor(quotes), 0b111 << 2 | !0 << 9);
    }

    proptest! {
        #[test]
        fn prefix_xor_by_multiplication_is_prefix_xor(bits in any::<u64>()) {
            let mut expected = 0;
            let mut parity = 0;
            for at in 0..BLOCK {
                parity ^= bits >> at & 1;
                expected |= parity << at;
            }
            prop_assert_eq!(prefix_xor(bits), expected);
            #[cfg(target_arch = "x86_64")]
            if avx2::detected() {
                // SAFETY: the CPU has PCLMULQDQ (checked just above).
                prop_assert_eq!(unsafe { avx2::prefix_xor(bits) }, expected);
            }
        }
    }
}
