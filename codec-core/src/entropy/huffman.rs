//! Canonical, length-limited Huffman coding (thesis sec. 2.4) with the code table in the stream.
//!
//! Code lengths come from symbol counts by the package-merge algorithm, which gives an optimal
//! prefix code under a maximum code length ([`MAX_CODE_LEN`] = 16, enough for all 65536 symbols
//! of a 16-bit alphabet). Codes are assigned canonically: sorted by (length, symbol), each code
//! is the previous one plus one, shifted left when the length grows. So the table only needs the
//! used symbols and their lengths.
//!
//! # Stream layout (MSB-first bits, see [`super::bits`])
//!
//! ```text
//! table:
//!   u(alphabet_bits)      used - 1: number of distinct symbols, 1 ..= 2^alphabet_bits
//!   used times, in increasing symbol order:
//!     ue(gap)             exp-Golomb order 0 of symbol - previous symbol - 1
//!                         (previous = -1 for the first entry)
//!     u(4)                code length - 1 (1 ..= 16)   -- only if used >= 2
//! codes:
//!   one canonical code per symbol, in order; when used == 1 every symbol takes 0 bits.
//! ```
//!
//! An empty symbol sequence is coded as nothing at all (no table): the decoder knows the count.
//! The decoder rejects tables whose Kraft sum exceeds 1, symbols outside the alphabet, and codes
//! that are not assigned in an incomplete table.

use super::EntropyError;
use super::bits::{BitReader, BitWriter};

/// Longest code the encoder produces and the decoder accepts.
pub const MAX_CODE_LEN: u8 = 16;
/// Bits resolved by one lookup in the decoder's primary table; longer codes (rare by
/// construction) take the canonical first-code search.
const PRIMARY_BITS: u32 = 11;

/// Optimal prefix-code lengths for symbols with the given occurrence counts, no code longer
/// than `max_len` bits (package-merge). Symbols with count 0 get length 0 (no code). A lone used
/// symbol gets length 1. Fails if more symbols are used than `max_len` bits can distinguish.
pub fn huffman_code_lengths(counts: &[u64], max_len: u8) -> Result<Vec<u8>, EntropyError> {
    let mut lengths = vec![0u8; counts.len()];
    // Used symbols by increasing count (ties: by symbol), as package-merge needs.
    let mut used: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
    used.sort_by_key(|&i| (counts[i], i));
    let n = used.len();
    match n {
        0 => return Ok(lengths),
        1 => {
            lengths[used[0]] = 1;
            return Ok(lengths);
        }
        _ => {}
    }
    if max_len == 0 || (max_len < 64 && (n as u64) > (1u64 << max_len)) {
        return Err(EntropyError::Invalid(format!(
            "{n} symbols cannot have prefix codes of at most {max_len} bits"
        )));
    }
    // No optimal code is longer than n - 1 bits, so deeper levels add nothing.
    let levels = usize::from(max_len).min(n - 1);
    let weights: Vec<u64> = used.iter().map(|&i| counts[i]).collect();

    // Package-merge: level lists from the deepest (leaves only) upwards; each upper list merges
    // the leaves with packages (pairs) of the list below. Only whether each item is a leaf is
    // kept, which is enough to count how often every leaf is selected.
    let mut is_leaf: Vec<Vec<bool>> = Vec::with_capacity(levels);
    is_leaf.push(vec![true; n]);
    let mut list = weights.clone();
    for _ in 1..levels {
        let packages: Vec<u64> = list
            .chunks_exact(2)
            .map(|p| p[0].saturating_add(p[1]))
            .collect();
        let mut merged = Vec::with_capacity(n + packages.len());
        let mut flags = Vec::with_capacity(n + packages.len());
        let (mut a, mut b) = (0, 0);
        while a < n || b < packages.len() {
            // Leaves first on ties: keeps codes shallow for the same cost.
            if b == packages.len() || (a < n && weights[a] <= packages[b]) {
                merged.push(weights[a]);
                flags.push(true);
                a += 1;
            } else {
                merged.push(packages[b]);
                flags.push(false);
                b += 1;
            }
        }
        list = merged;
        is_leaf.push(flags);
    }
    // Select the 2n - 2 cheapest items of the top list; every package selected at one level
    // selects its two items in the level below. A leaf's code length is how many levels select
    // it; the selected leaves of a level are always the cheapest ones (a prefix).
    let mut take = 2 * n - 2;
    for flags in is_leaf.iter().rev() {
        let take_here = take.min(flags.len());
        let leaves = flags[..take_here].iter().filter(|&&f| f).count();
        for &sym in &used[..leaves] {
            lengths[sym] += 1;
        }
        take = 2 * (take_here - leaves);
    }
    Ok(lengths)
}

/// Canonical codes for the given lengths (0 = unused symbol, at most [`MAX_CODE_LEN`]): codes
/// sorted by (length, symbol) are consecutive integers, shifted left at each length increase.
pub fn canonical_codes(lengths: &[u8]) -> Vec<u32> {
    debug_assert!(lengths.iter().all(|&l| l <= MAX_CODE_LEN));
    let mut per_len = [0u32; MAX_CODE_LEN as usize + 2];
    for &l in lengths {
        per_len[usize::from(l)] += 1;
    }
    per_len[0] = 0;
    let mut next = [0u32; MAX_CODE_LEN as usize + 2];
    let mut code = 0u32;
    for l in 1..=usize::from(MAX_CODE_LEN) {
        code = (code + per_len[l - 1]) << 1;
        next[l] = code;
    }
    lengths
        .iter()
        .map(|&l| {
            if l == 0 {
                0
            } else {
                let c = next[usize::from(l)];
                next[usize::from(l)] += 1;
                c
            }
        })
        .collect()
}

/// Writes the table and the codes of `symbols` (all `< 2^bits`, checked by the caller).
///
/// Work is O(symbols + alphabet) for long sequences and O(symbols * log symbols) for short
/// ones over a large alphabet (a few motion vectors in a 16-bit alphabet must not cost a
/// 65536-entry histogram).
pub fn write_huffman(w: &mut BitWriter<'_>, symbols: &[u16], bits: u32) {
    if symbols.is_empty() {
        return;
    }
    let alphabet = 1usize << bits;
    // Used symbols in increasing order and their counts.
    let dense = symbols.len() * 4 >= alphabet;
    let (used_symbols, counts): (Vec<u16>, Vec<u64>) = if dense {
        let mut histogram = vec![0u64; alphabet];
        for &s in symbols {
            histogram[usize::from(s)] += 1;
        }
        (0..alphabet)
            .filter(|&s| histogram[s] > 0)
            .map(|s| (s as u16, histogram[s]))
            .unzip()
    } else {
        let mut sorted = symbols.to_vec();
        sorted.sort_unstable();
        let mut pairs: Vec<(u16, u64)> = Vec::new();
        for s in sorted {
            match pairs.last_mut() {
                Some((last, n)) if *last == s => *n += 1,
                _ => pairs.push((s, 1)),
            }
        }
        pairs.into_iter().unzip()
    };
    let used = used_symbols.len();
    // Lengths and canonical codes over the compact index space: index order is symbol order,
    // so ties and canonical order are the same as over the full alphabet.
    let lengths = huffman_code_lengths(&counts, MAX_CODE_LEN)
        .expect("a 16-bit alphabet always fits 16-bit codes");
    let codes = canonical_codes(&lengths);

    w.write((used - 1) as u32, bits);
    let mut previous: i64 = -1;
    for (&sym, &len) in used_symbols.iter().zip(&lengths) {
        w.write_exp_golomb((i64::from(sym) - previous - 1) as u64, 0);
        previous = i64::from(sym);
        if used >= 2 {
            w.write(u32::from(len) - 1, 4);
        }
    }
    if used == 1 {
        return;
    }
    let payload_bits: u64 = counts
        .iter()
        .zip(&lengths)
        .map(|(&c, &l)| c * u64::from(l))
        .sum();
    w.reserve_bits(payload_bits);
    // code << 5 | length in one word: one load per symbol in the hot loop.
    let entries: Vec<u32> = codes
        .iter()
        .zip(&lengths)
        .map(|(&c, &l)| (c << 5) | u32::from(l))
        .collect();
    if dense {
        let mut table = vec![0u32; alphabet];
        for (&sym, &e) in used_symbols.iter().zip(&entries) {
            table[usize::from(sym)] = e;
        }
        for &s in symbols {
            let e = table[usize::from(s)];
            w.write(e >> 5, e & 31);
        }
    } else {
        for &s in symbols {
            let i = used_symbols
                .binary_search(&s)
                .expect("every symbol was counted");
            let e = entries[i];
            w.write(e >> 5, e & 31);
        }
    }
}

/// A decoding table read from the stream.
pub struct HuffmanDecoder {
    /// Set when the table lists one symbol: every symbol is that one and takes no bits.
    single: Option<u16>,
    /// Indexed by the next `primary_bits` bits: `symbol << 8 | length`, or 0 when the code is
    /// longer than `primary_bits` or unassigned.
    primary: Vec<u32>,
    primary_bits: u32,
    max_len: u32,
    /// Canonical first-code search for lengths above `primary_bits`.
    first_code: [u32; MAX_CODE_LEN as usize + 1],
    count: [u32; MAX_CODE_LEN as usize + 1],
    offset: [u32; MAX_CODE_LEN as usize + 1],
    /// Used symbols sorted by (length, symbol).
    sorted: Vec<u16>,
}

impl HuffmanDecoder {
    /// Reads and validates a table (layout in the module docs).
    pub fn read_table(r: &mut BitReader<'_>, bits: u32) -> Result<Self, EntropyError> {
        let used = r.read(bits)? as usize + 1;
        let per_entry = if used >= 2 { 5 } else { 1 };
        if (used as u64) * per_entry > r.remaining_bits() {
            return Err(EntropyError::Truncated);
        }
        let alphabet = 1u64 << bits;
        let mut entries: Vec<(u8, u16)> = Vec::with_capacity(used);
        let mut previous: i64 = -1;
        let mut kraft: u64 = 0;
        for _ in 0..used {
            let gap = r.read_exp_golomb(0, bits)?;
            let sym = (previous + 1) as u64 + gap;
            if sym >= alphabet {
                return Err(EntropyError::Invalid(format!(
                    "Huffman table symbol {sym} outside the {bits}-bit alphabet"
                )));
            }
            previous = sym as i64;
            let len = if used >= 2 { r.read(4)? as u8 + 1 } else { 0 };
            if len > MAX_CODE_LEN {
                return Err(EntropyError::Invalid(format!(
                    "Huffman code length {len} above {MAX_CODE_LEN}"
                )));
            }
            if len > 0 {
                kraft += 1u64 << (MAX_CODE_LEN - len);
                if kraft > 1u64 << MAX_CODE_LEN {
                    return Err(EntropyError::Invalid(
                        "Huffman code lengths oversubscribe the code space (Kraft sum > 1)".into(),
                    ));
                }
            }
            entries.push((len, sym as u16));
        }
        if used == 1 {
            return Ok(HuffmanDecoder {
                single: Some(entries[0].1),
                primary: Vec::new(),
                primary_bits: 0,
                max_len: 0,
                first_code: [0; MAX_CODE_LEN as usize + 1],
                count: [0; MAX_CODE_LEN as usize + 1],
                offset: [0; MAX_CODE_LEN as usize + 1],
                sorted: Vec::new(),
            });
        }
        entries.sort_unstable();
        let max_len = u32::from(entries.last().map_or(1, |e| e.0));
        let mut count = [0u32; MAX_CODE_LEN as usize + 1];
        for &(len, _) in &entries {
            count[usize::from(len)] += 1;
        }
        let mut first_code = [0u32; MAX_CODE_LEN as usize + 1];
        let mut offset = [0u32; MAX_CODE_LEN as usize + 1];
        let mut code = 0u32;
        let mut off = 0u32;
        for l in 1..=usize::from(MAX_CODE_LEN) {
            code = (code + count[l - 1]) << 1;
            first_code[l] = code;
            offset[l] = off;
            off += count[l];
        }
        let sorted: Vec<u16> = entries.iter().map(|e| e.1).collect();

        let primary_bits = max_len.min(PRIMARY_BITS);
        let mut primary = vec![0u32; 1usize << primary_bits];
        let mut next = first_code;
        for &(len, sym) in &entries {
            let len = u32::from(len);
            let c = next[len as usize];
            next[len as usize] += 1;
            if len <= primary_bits {
                let shift = primary_bits - len;
                let start = (c << shift) as usize;
                let entry = (u32::from(sym) << 8) | len;
                primary[start..start + (1usize << shift)].fill(entry);
            }
        }
        Ok(HuffmanDecoder {
            single: None,
            primary,
            primary_bits,
            max_len,
            first_code,
            count,
            offset,
            sorted,
        })
    }

    /// True when symbols take no bits (one-symbol table).
    pub fn is_zero_width(&self) -> bool {
        self.single.is_some()
    }

    /// Decodes one symbol.
    #[inline(always)]
    pub fn decode_symbol(&self, r: &mut BitReader<'_>) -> Result<u16, EntropyError> {
        if let Some(s) = self.single {
            return Ok(s);
        }
        let (window, real) = r.peek32();
        let e = self.primary[(window >> (32 - self.primary_bits)) as usize];
        if e != 0 {
            let len = e & 0xFF;
            if len > real {
                return Err(EntropyError::Truncated);
            }
            r.consume(len);
            return Ok((e >> 8) as u16);
        }
        self.decode_long(r, window, real)
    }

    /// Decodes `out.len()` symbols. Resolves several symbols per refill of the bit buffer
    /// while at least `max_len` bits are buffered, so the bounds checks of
    /// [`HuffmanDecoder::decode_symbol`] are only paid near the end of the input.
    pub fn decode_into(&self, r: &mut BitReader<'_>, out: &mut [u16]) -> Result<(), EntropyError> {
        if let Some(s) = self.single {
            out.fill(s);
            return Ok(());
        }
        let shift = 64 - self.primary_bits;
        let mut i = 0;
        while i < out.len() {
            let mut avail = r.fill();
            if avail < self.max_len {
                out[i] = self.decode_symbol(r)?;
                i += 1;
                continue;
            }
            let mut window = r.window();
            let mut used = 0;
            while avail >= self.max_len && i < out.len() {
                let e = self.primary[(window >> shift) as usize];
                if e == 0 {
                    break;
                }
                let len = e & 0xFF;
                out[i] = (e >> 8) as u16;
                i += 1;
                window <<= len;
                used += len;
                avail -= len;
            }
            r.consume(used);
            if i < out.len() && avail >= self.max_len {
                // A code longer than the primary table, or an unassigned one.
                out[i] = self.decode_symbol(r)?;
                i += 1;
            }
        }
        Ok(())
    }

    #[cold]
    fn decode_long(
        &self,
        r: &mut BitReader<'_>,
        window: u32,
        real: u32,
    ) -> Result<u16, EntropyError> {
        for len in self.primary_bits + 1..=self.max_len {
            let l = len as usize;
            let c = window >> (32 - len);
            let index = c.wrapping_sub(self.first_code[l]);
            if index < self.count[l] {
                if len > real {
                    return Err(EntropyError::Truncated);
                }
                r.consume(len);
                return Ok(self.sorted[(self.offset[l] + index) as usize]);
            }
        }
        if real < self.max_len {
            Err(EntropyError::Truncated)
        } else {
            Err(EntropyError::Invalid("unassigned Huffman code".into()))
        }
    }
}

/// Reads a table and `count` symbols, appending them to `out`.
pub fn read_huffman(
    r: &mut BitReader<'_>,
    bits: u32,
    count: usize,
    out: &mut Vec<u16>,
) -> Result<(), EntropyError> {
    if count == 0 {
        return Ok(());
    }
    let dec = HuffmanDecoder::read_table(r, bits)?;
    if let Some(s) = dec.single {
        out.resize(out.len() + count, s);
        return Ok(());
    }
    // Every code takes at least one bit.
    if count as u64 > r.remaining_bits() {
        return Err(EntropyError::Truncated);
    }
    let start = out.len();
    out.resize(start + count, 0);
    dec.decode_into(r, &mut out[start..])
}

pub fn encode(symbols: &[u16], bits: u32, out: &mut Vec<u8>) {
    let mut w = BitWriter::new(out);
    write_huffman(&mut w, symbols, bits);
    w.finish();
}

pub fn decode(input: &[u8], bits: u32, count: usize) -> Result<Vec<u16>, EntropyError> {
    let mut r = BitReader::new(input);
    let mut out = Vec::new();
    read_huffman(&mut r, bits, count, &mut out)?;
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kraft_sum(lengths: &[u8]) -> f64 {
        lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 0.5f64.powi(i32::from(l)))
            .sum()
    }

    /// Textbook Huffman (repeatedly merge the two lightest nodes), used as the reference cost.
    fn reference_huffman_cost(counts: &[u64]) -> u64 {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut heap: BinaryHeap<Reverse<u64>> = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| Reverse(c))
            .collect();
        if heap.len() < 2 {
            return counts.iter().sum();
        }
        // The total cost equals the sum of all internal node weights.
        let mut cost = 0;
        while heap.len() > 1 {
            let Reverse(a) = heap.pop().unwrap();
            let Reverse(b) = heap.pop().unwrap();
            cost += a + b;
            heap.push(Reverse(a + b));
        }
        cost
    }

    fn cost(counts: &[u64], lengths: &[u8]) -> u64 {
        counts
            .iter()
            .zip(lengths)
            .map(|(&c, &l)| c * u64::from(l))
            .sum()
    }

    /// Thesis Table 2.1 (probabilities of the 3-bit symbols 000..111) and Table 2.2: the code
    /// lengths are {1,3,3,4,4,4,4} and the average is 2.5 bits/symbol (the table prints 2.3,
    /// a known error: 0.4*1 + 0.2*3 + 0.1*3 + (0.1+0.09+0.06+0.05)*4 = 2.5).
    #[test]
    fn huffman_thesis_table_2_1_known_answer() {
        let probabilities = [0.1, 0.06, 0.4, 0.05, 0.0, 0.09, 0.2, 0.1];
        let counts: Vec<u64> = probabilities
            .iter()
            .map(|&p: &f64| (p * 100.0).round() as u64)
            .collect();
        let lengths = huffman_code_lengths(&counts, MAX_CODE_LEN).unwrap();
        let mut used: Vec<u8> = lengths.iter().copied().filter(|&l| l > 0).collect();
        used.sort_unstable();
        assert_eq!(used, vec![1, 3, 3, 4, 4, 4, 4]);
        // Symbol 100 has probability 0: no code (empty cell in Table 2.2).
        assert_eq!(lengths[0b100], 0);
        // Per-symbol lengths equal Table 2.2's codewords (000 "1010", 001 "1110", 010 "0",
        // 011 "1111", 101 "1011", 110 "100", 111 "110"). The two symbols with p = 0.1 (000 and
        // 111) tie; ties go to the lower symbol getting the longer code, as in the table.
        assert_eq!(lengths, vec![4, 4, 1, 4, 0, 4, 3, 3]);
        let average: f64 = probabilities
            .iter()
            .zip(&lengths)
            .map(|(&p, &l)| p * f64::from(l))
            .sum();
        assert!((average - 2.5).abs() < 1e-12, "average {average}");
        assert!((kraft_sum(&lengths) - 1.0).abs() < 1e-12);
        // Canonical codes are a prefix code with these lengths.
        let codes = canonical_codes(&lengths);
        assert_eq!(codes[0b010], 0b0);
        assert_eq!(codes[0b110], 0b100);
    }

    #[test]
    fn huffman_length_limit_is_respected() {
        // Fibonacci counts make plain Huffman codes as deep as possible (n - 1 bits).
        let mut counts = vec![1u64, 1];
        while counts.len() < 30 {
            let k = counts.len();
            counts.push(counts[k - 1] + counts[k - 2]);
        }
        let unlimited = huffman_code_lengths(&counts, 64).unwrap();
        assert_eq!(*unlimited.iter().max().unwrap(), 29);
        assert_eq!(cost(&counts, &unlimited), reference_huffman_cost(&counts));
        for limit in [5u8, 8, 12, 16] {
            let limited = huffman_code_lengths(&counts, limit).unwrap();
            assert!(*limited.iter().max().unwrap() <= limit);
            assert!((kraft_sum(&limited) - 1.0).abs() < 1e-12);
            assert!(cost(&counts, &limited) >= cost(&counts, &unlimited));
        }
        assert!(huffman_code_lengths(&counts, 4).is_err());
        assert!(huffman_code_lengths(&counts, 0).is_err());
    }

    #[test]
    fn huffman_full_16_bit_alphabet_fits_16_bits() {
        let counts: Vec<u64> = (0..65_536u64).map(|i| 1 + (i * 7919) % 1000).collect();
        let lengths = huffman_code_lengths(&counts, MAX_CODE_LEN).unwrap();
        assert!(lengths.iter().all(|&l| (1..=16).contains(&l)));
        assert!(kraft_sum(&lengths) <= 1.0 + 1e-12);
    }

    #[test]
    fn huffman_degenerate_counts() {
        assert_eq!(huffman_code_lengths(&[], 16).unwrap(), Vec::<u8>::new());
        assert_eq!(huffman_code_lengths(&[0, 0], 16).unwrap(), vec![0, 0]);
        assert_eq!(huffman_code_lengths(&[0, 9, 0], 16).unwrap(), vec![0, 1, 0]);
        assert_eq!(huffman_code_lengths(&[3, 9], 1).unwrap(), vec![1, 1]);
    }

    fn table_bytes(entries: &[(u64, u32)], bits: u32, used: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write((used - 1) as u32, bits);
        for &(gap, len_minus_1) in entries {
            w.write_exp_golomb(gap, 0);
            w.write(len_minus_1, 4);
        }
        // A few code bits after the table.
        w.write(0xFFFF, 16);
        w.finish();
        out
    }

    #[test]
    fn huffman_rejects_oversubscribed_table() {
        // Three symbols all of length 1: Kraft sum 3/2.
        let bytes = table_bytes(&[(0, 0), (0, 0), (0, 0)], 4, 3);
        let mut r = BitReader::new(&bytes);
        assert!(matches!(
            HuffmanDecoder::read_table(&mut r, 4),
            Err(EntropyError::Invalid(_))
        ));
    }

    #[test]
    fn huffman_rejects_symbol_outside_alphabet() {
        let bytes = table_bytes(&[(5, 0), (20, 0)], 4, 2);
        let mut r = BitReader::new(&bytes);
        assert!(matches!(
            HuffmanDecoder::read_table(&mut r, 4),
            Err(EntropyError::Invalid(_))
        ));
    }

    #[test]
    fn huffman_incomplete_code_hits_unassigned_code() {
        // Symbols 0 and 1 with lengths 1 and 2: codes "0" and "10"; "11" is unassigned.
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write(1, 2);
        w.write_exp_golomb(0, 0);
        w.write(0, 4);
        w.write_exp_golomb(0, 0);
        w.write(1, 4);
        w.write(0b0_10_11, 5);
        w.finish();
        let mut r = BitReader::new(&out);
        let dec = HuffmanDecoder::read_table(&mut r, 2).unwrap();
        assert_eq!(dec.decode_symbol(&mut r).unwrap(), 0);
        assert_eq!(dec.decode_symbol(&mut r).unwrap(), 1);
        assert!(matches!(
            dec.decode_symbol(&mut r),
            Err(EntropyError::Invalid(_))
        ));
    }

    #[test]
    fn huffman_long_codes_decode_through_slow_path() {
        // Fibonacci-like counts give codes up to 16 bits, above the primary table width.
        let mut symbols = Vec::new();
        let mut c = 1usize;
        let mut prev = 1usize;
        for s in 0..20u16 {
            for _ in 0..c {
                symbols.push(s);
            }
            let next = c + prev;
            prev = c;
            c = next.min(5000);
        }
        let mut out = Vec::new();
        encode(&symbols, 5, &mut out);
        assert_eq!(decode(&out, 5, symbols.len()).unwrap(), symbols);
    }

    proptest! {
        #[test]
        fn huffman_lengths_are_optimal_and_valid(
            counts in proptest::collection::vec(0u64..1000, 0..200),
            limit in 8u8..=16,
        ) {
            let lengths = huffman_code_lengths(&counts, limit).unwrap();
            let used = counts.iter().filter(|&&c| c > 0).count();
            prop_assert_eq!(lengths.len(), counts.len());
            for (&c, &l) in counts.iter().zip(&lengths) {
                prop_assert_eq!(c == 0, l == 0);
                prop_assert!(l <= limit);
            }
            if used >= 2 {
                prop_assert!((kraft_sum(&lengths) - 1.0).abs() < 1e-9);
                // With at most 200 symbols and counts < 1000 an 8-bit limit may bind, so only
                // compare with the unlimited optimum when the reference is shallow enough.
                let unlimited = huffman_code_lengths(&counts, 64).unwrap();
                prop_assert_eq!(cost(&counts, &unlimited), reference_huffman_cost(&counts));
                prop_assert!(cost(&counts, &lengths) >= cost(&counts, &unlimited));
                if *unlimited.iter().max().unwrap() <= limit {
                    prop_assert_eq!(cost(&counts, &lengths), cost(&counts, &unlimited));
                }
            }
        }
    }
}
