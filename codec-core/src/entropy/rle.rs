//! Run-length coding ([`Rle`](super::EntropyMode::Rle), thesis sec. 2.5), specialised for the
//! long runs of the zero symbol that ReLU feature maps and motion residuals are made of.
//!
//! The thesis's RLE sends (value, repeat count) pairs. Here the runs that matter are runs of
//! `zero`, so each pair is (number of zeros, the nonzero symbol that ends them), with the run
//! length in an exponential-Golomb code whose order the encoder picks per payload: a long run
//! costs O(log run) bits, an isolated nonzero symbol costs `alphabet_bits` + 1 bit at order 0.
//!
//! # Stream layout (MSB-first bits)
//!
//! ```text
//! u(4)              k: exp-Golomb order of the run lengths (0..=15)
//! repeated until `count` symbols are produced:
//!   ue_k(run)       `run` zero symbols (may be 0)
//!   u(alphabet_bits) one symbol != zero -- omitted when the run reaches `count`
//! padding: zero bits up to the next byte
//! ```
//!
//! A run overshooting `count` and a terminating symbol equal to `zero` are rejected, so every
//! sequence has one valid payload (the encoder never writes a trailing empty run).

use super::EntropyError;
use super::bits::{BitReader, BitWriter, exp_golomb_len};

const MAX_ORDER: u32 = 15;

/// Calls `f(run, terminator)` for each (zero run, terminating nonzero symbol) pair in coding
/// order; a trailing run of zeros has no terminator (`None`).
#[inline]
fn for_each_pair(symbols: &[u16], zero: u16, mut f: impl FnMut(u64, Option<u16>)) {
    let mut rest = symbols;
    while !rest.is_empty() {
        match rest.iter().position(|&s| s != zero) {
            Some(run) => {
                f(run as u64, Some(rest[run]));
                rest = &rest[run + 1..];
            }
            None => {
                f(rest.len() as u64, None);
                rest = &[];
            }
        }
    }
}

/// The exp-Golomb order minimising the total size of the run lengths.
fn best_order(symbols: &[u16], zero: u16) -> u32 {
    // Short runs by histogram, so the cost of every order is cheap to evaluate exactly.
    const SHORT: usize = 256;
    let mut short = [0u64; SHORT];
    let mut long = Vec::new();
    for_each_pair(symbols, zero, |r, _| {
        if (r as usize) < SHORT {
            short[r as usize] += 1;
        } else {
            long.push(r);
        }
    });
    (0..=MAX_ORDER)
        .min_by_key(|&k| {
            let s: u64 = short
                .iter()
                .enumerate()
                .map(|(v, &n)| n * exp_golomb_len(v as u64, k))
                .sum();
            let l: u64 = long.iter().map(|&r| exp_golomb_len(r, k)).sum();
            s + l
        })
        .unwrap_or(0)
}

pub fn encode(symbols: &[u16], bits: u32, zero: u16, out: &mut Vec<u8>) {
    let k = best_order(symbols, zero);
    let mut w = BitWriter::new(out);
    w.write(k, 4);
    for_each_pair(symbols, zero, |run, symbol| {
        w.write_exp_golomb(run, k);
        if let Some(s) = symbol {
            w.write(u32::from(s), bits);
        }
    });
    w.finish();
}

/// Decodes `count` symbols. The payload is parsed and checked once before anything is
/// allocated, so a payload that is invalid (a run past `count`, a zero terminator, missing or
/// trailing bits) costs no allocation of `count` symbols, however many it claims.
pub fn decode(input: &[u8], bits: u32, zero: u16, count: usize) -> Result<Vec<u16>, EntropyError> {
    walk(input, bits, zero, count, |_, _| {})?;
    let mut out = Vec::with_capacity(count);
    walk(input, bits, zero, count, |run, symbol| {
        out.resize(out.len() + run, zero);
        out.extend(symbol);
    })
    .expect("the payload was checked");
    Ok(out)
}

/// Reads the (zero run, terminating symbol) pairs of a payload of `count` symbols, calling
/// `f` for each, and checks the payload (the calls before an error are not undone).
fn walk(
    input: &[u8],
    bits: u32,
    zero: u16,
    count: usize,
    mut f: impl FnMut(usize, Option<u16>),
) -> Result<(), EntropyError> {
    let mut r = BitReader::new(input);
    let k = r.read(4)?;
    let mut done = 0usize;
    while done < count {
        let left = (count - done) as u64;
        let run = r.read_exp_golomb(k, 63 - k)?;
        if run > left {
            return Err(EntropyError::Invalid(format!(
                "run of {run} zero symbols exceeds the {left} symbols left"
            )));
        }
        if run == left {
            f(run as usize, None);
            break;
        }
        let s = r.read(bits)? as u16;
        if s == zero {
            return Err(EntropyError::Invalid(
                "run-length symbol equals the zero symbol".into(),
            ));
        }
        f(run as usize, Some(s));
        done += run as usize + 1;
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rle_exact_layout() {
        // 2-bit symbols, zero = 0: [0, 0, 0, 2, 1, 0] -> runs 3, 0, 1. Run bits per order:
        // k=0: 5+1+3 = 9, k=1: 4+2+2 = 8, k=2: 3+3+3 = 9, so k = 1.
        let symbols = [0, 0, 0, 2, 1, 0];
        let mut out = Vec::new();
        encode(&symbols, 2, 0, &mut out);
        // k=0001, ue1(3)=0101, 10, ue1(0)=10, 01, ue1(1)=11
        assert_eq!(out, vec![0b0001_0101, 0b1010_0111]);
        assert_eq!(decode(&out, 2, 0, 6).unwrap(), symbols);
    }

    #[test]
    fn rle_picks_high_order_for_long_runs() {
        let mut symbols = vec![5u16; 100_000];
        for i in (0..symbols.len()).step_by(5000) {
            symbols[i] = 9;
        }
        let k = best_order(&symbols, 5);
        assert!(k >= 8, "order {k}");
    }

    #[test]
    fn rle_rejects_overlong_run_and_zero_terminator() {
        // k=0, run 3 (00100) with count 2.
        let bytes = [0b0000_0010, 0b0000_0000];
        assert!(matches!(
            decode(&bytes, 2, 0, 2),
            Err(EntropyError::Invalid(_))
        ));
        // k=0, run 0 ("1"), symbol 00 == zero.
        let bytes = [0b0000_1000];
        assert!(matches!(
            decode(&bytes, 2, 0, 2),
            Err(EntropyError::Invalid(_))
        ));
    }

    #[test]
    fn rle_refuses_a_short_payload_for_a_huge_count_before_allocating() {
        // k=0, run 0, symbol 01, then nothing: 2^28 symbols claimed, 1 present. Refused by the
        // checking pass (no 2^28-symbol buffer is reserved; that would take 512 MiB).
        let bytes = [0b0000_1010];
        assert_eq!(decode(&bytes, 2, 0, 1 << 28), Err(EntropyError::Truncated));
        // A run reaching the count is what legitimately expands: 2^20 zeros from 6 bytes.
        let mut out = Vec::new();
        encode(&vec![0u16; 1 << 20], 2, 0, &mut out);
        assert!(out.len() <= 8);
        assert_eq!(decode(&out, 2, 0, 1 << 20).unwrap(), vec![0u16; 1 << 20]);
    }
}
