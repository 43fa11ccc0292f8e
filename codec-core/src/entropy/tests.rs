//! Cross-mode tests of the public entropy API: round trips, hostile payloads, compression.

use super::*;
use proptest::prelude::*;

/// Small deterministic generator (xorshift64*) so tests need no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn round_trip(mode: EntropyMode, symbols: &[u16], bits: u8, zero: u16) -> Vec<u8> {
    let mut out = Vec::new();
    encode(mode, symbols, bits, zero, &mut out).unwrap();
    let back = decode(mode, &out, bits, zero, symbols.len())
        .unwrap_or_else(|e| panic!("{} bits={bits} zero={zero}: {e}", mode.name()));
    assert_eq!(back, symbols, "{} bits={bits} zero={zero}", mode.name());
    out
}

fn coded(mode: EntropyMode, symbols: &[u16], bits: u8, zero: u16) -> Vec<u8> {
    let mut out = Vec::new();
    encode(mode, symbols, bits, zero, &mut out).unwrap();
    out
}

/// A ReLU-like source: `zero` with probability `p_zero`, otherwise a geometric-ish magnitude.
fn sparse_symbols(rng: &mut Rng, n: usize, bits: u8, zero: u16, p_zero: f64) -> Vec<u16> {
    let max = (1u32 << bits) - 1;
    (0..n)
        .map(|_| {
            if rng.unit() < p_zero {
                zero
            } else {
                let mut v = 1u32;
                while v < max && rng.unit() < 0.7 {
                    v += 1;
                }
                ((u32::from(zero) + v) % (max + 1)) as u16
            }
        })
        .collect()
}

#[test]
fn entropy_mode_ids_round_trip() {
    for mode in EntropyMode::ALL {
        assert_eq!(EntropyMode::from_id(mode.id()), Some(mode));
    }
    assert_eq!(EntropyMode::from_id(5), None);
}

#[test]
fn entropy_every_alphabet_size_round_trips() {
    let mut rng = Rng(0x1234_5678);
    for bits in 1..=16u8 {
        let max = 1u64 << bits;
        let zero = (rng.below(max)) as u16;
        let uniform: Vec<u16> = (0..3000).map(|_| rng.below(max) as u16).collect();
        let sparse = sparse_symbols(&mut rng, 3000, bits, zero, 0.8);
        let constant = vec![(max - 1) as u16; 777];
        let extremes: Vec<u16> = (0..100)
            .map(|i| if i % 3 == 0 { 0 } else { (max - 1) as u16 })
            .collect();
        for mode in EntropyMode::ALL {
            for symbols in [&uniform, &sparse, &constant, &extremes] {
                round_trip(mode, symbols, bits, zero);
            }
            // One symbol, and the zero symbol alone.
            round_trip(mode, &[(max - 1) as u16], bits, zero);
            round_trip(mode, &[zero], bits, zero);
        }
    }
}

#[test]
fn entropy_empty_input() {
    for mode in EntropyMode::ALL {
        let out = coded(mode, &[], 8, 0);
        assert!(out.is_empty(), "{}", mode.name());
        assert_eq!(decode(mode, &[], 8, 0, 0).unwrap(), Vec::<u16>::new());
        assert_eq!(
            decode(mode, &[0], 8, 0, 0),
            Err(EntropyError::TrailingBytes(1))
        );
        // A nonzero count needs a payload.
        assert_eq!(decode(mode, &[], 8, 0, 1), Err(EntropyError::Truncated));
    }
}

#[test]
fn entropy_invalid_arguments() {
    let mut out = Vec::new();
    for mode in EntropyMode::ALL {
        for bad_bits in [0u8, 17, 255] {
            assert!(matches!(
                encode(mode, &[0], bad_bits, 0, &mut out),
                Err(EntropyError::Invalid(_))
            ));
            assert!(matches!(
                decode(mode, &[0], bad_bits, 0, 1),
                Err(EntropyError::Invalid(_))
            ));
        }
        assert!(matches!(
            encode(mode, &[1, 2, 16, 3], 4, 0, &mut out),
            Err(EntropyError::Invalid(m)) if m.contains("index 2")
        ));
        assert!(matches!(
            encode(mode, &[1], 4, 16, &mut out),
            Err(EntropyError::Invalid(_))
        ));
        assert!(matches!(
            decode(mode, &[0], 4, 16, 1),
            Err(EntropyError::Invalid(_))
        ));
    }
    assert!(out.is_empty());
}

#[test]
fn entropy_count_mismatch_is_an_error() {
    let mut rng = Rng(99);
    for bits in [1u8, 4, 8, 12, 16] {
        let zero = 0;
        for p_zero in [0.0, 0.5, 0.95] {
            let symbols = sparse_symbols(&mut rng, 4000, bits, zero, p_zero);
            for mode in EntropyMode::ALL {
                let out = coded(mode, &symbols, bits, zero);
                let n = symbols.len();
                let single_symbol = symbols.iter().all(|&s| s == symbols[0]);
                for wrong in [n / 2, 2 * n + 64] {
                    if mode == EntropyMode::Huffman && single_symbol {
                        // A one-symbol table codes symbols in zero bits: the payload does not
                        // depend on the count, so any count decodes (to that symbol).
                        assert_eq!(
                            decode(mode, &out, bits, zero, wrong),
                            Ok(vec![symbols[0]; wrong])
                        );
                        continue;
                    }
                    assert!(
                        decode(mode, &out, bits, zero, wrong).is_err(),
                        "{} bits={bits} p_zero={p_zero} count {wrong} instead of {n}",
                        mode.name()
                    );
                }
            }
        }
    }
    // Exact error kinds for the fixed-width mode.
    let out = coded(EntropyMode::None, &[1, 2, 3, 4], 8, 0);
    assert_eq!(
        decode(EntropyMode::None, &out, 8, 0, 5),
        Err(EntropyError::Truncated)
    );
    assert_eq!(
        decode(EntropyMode::None, &out, 8, 0, 3),
        Err(EntropyError::TrailingBytes(1))
    );
}

#[test]
fn entropy_truncated_payloads_fail() {
    let mut rng = Rng(7);
    for bits in [2u8, 8, 13] {
        let symbols = sparse_symbols(&mut rng, 1500, bits, 1, 0.7);
        for mode in EntropyMode::ALL {
            let out = coded(mode, &symbols, bits, 1);
            for cut in 0..out.len() {
                assert!(
                    decode(mode, &out[..cut], bits, 1, symbols.len()).is_err(),
                    "{} bits={bits} cut at {cut} of {}",
                    mode.name(),
                    out.len()
                );
            }
            let mut longer = out.clone();
            longer.push(0);
            assert_eq!(
                decode(mode, &longer, bits, 1, symbols.len()),
                Err(EntropyError::TrailingBytes(1)),
                "{}",
                mode.name()
            );
        }
    }
}

#[test]
fn entropy_zigzag() {
    let pairs = [
        (0, 0u16),
        (-1, 1),
        (1, 2),
        (-2, 3),
        (2, 4),
        (32767, 65534),
        (-32768, 65535),
    ];
    for (v, u) in pairs {
        assert_eq!(zigzag(v), u);
        assert_eq!(unzigzag(u), v);
    }
    for u in 0..=u16::MAX {
        assert_eq!(zigzag(unzigzag(u)), u);
    }
    assert_eq!(zigzag(100_000), 65534);
    assert_eq!(zigzag(-100_000), 65535);
}

#[test]
fn entropy_zvc_on_90_percent_zeros_beats_packed() {
    let mut rng = Rng(42);
    let bits = 8;
    let zero = 17;
    let symbols = sparse_symbols(&mut rng, 100_000, bits, zero, 0.9);
    let packed = round_trip(EntropyMode::None, &symbols, bits, zero).len();
    let zvc = round_trip(EntropyMode::Zvc, &symbols, bits, zero).len();
    let zvc_huffman = round_trip(EntropyMode::ZvcHuffman, &symbols, bits, zero).len();
    assert_eq!(packed, 100_000);
    // mask 1 bit/symbol + 8 bits per nonzero (~10%) = ~1.8 bits/symbol of 8.
    assert!(zvc * 4 < packed, "zvc {zvc} vs packed {packed}");
    assert!(zvc_huffman < zvc, "zvc-huffman {zvc_huffman} vs zvc {zvc}");
}

fn empirical_entropy_bits(symbols: &[u16]) -> f64 {
    let mut hist = std::collections::HashMap::new();
    for &s in symbols {
        *hist.entry(s).or_insert(0u64) += 1;
    }
    let n = symbols.len() as f64;
    hist.values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[test]
fn entropy_huffman_approaches_source_entropy() {
    let mut rng = Rng(2024);
    // Skewed geometric-like source over a 6-bit alphabet: p(k) ~ 0.8^k.
    let symbols: Vec<u16> = (0..200_000)
        .map(|_| {
            let mut k = 0u16;
            while k < 63 && rng.unit() < 0.8 {
                k += 1;
            }
            k
        })
        .collect();
    let h = empirical_entropy_bits(&symbols);
    let out = round_trip(EntropyMode::Huffman, &symbols, 6, 0);
    let rate = out.len() as f64 * 8.0 / symbols.len() as f64;
    // No prefix code beats the entropy of the empirical distribution; Huffman is within a
    // small redundancy of it for a source without a dominant symbol (p_max = 0.2 here).
    assert!(rate >= h, "rate {rate} below entropy {h}");
    assert!(rate < h + 0.05, "rate {rate} vs entropy {h}");
    // Fixed-width coding would take 6 bits; the entropy is ~3.6 bits.
    assert!(h > 3.0 && h < 4.0, "entropy {h}");
}

#[test]
fn entropy_rle_on_long_runs_is_small() {
    let bits = 8;
    let zero = 128;
    let mut symbols = vec![zero; 1_000_000];
    for i in 0..100 {
        symbols[i * 9_973 + 17] = (i % 100) as u16;
    }
    let out = round_trip(EntropyMode::Rle, &symbols, bits, zero);
    // 100 runs of ~10k zeros: ~ (8 + ~14) bits each.
    assert!(out.len() < 400, "rle {} bytes", out.len());
    let all_zero = vec![zero; 5_000_000];
    let out = round_trip(EntropyMode::Rle, &all_zero, bits, zero);
    assert!(out.len() <= 8, "rle of one run {} bytes", out.len());
}

#[test]
fn entropy_huffman_single_symbol_costs_only_the_table() {
    let symbols = vec![300u16; 100_000];
    let out = round_trip(EntropyMode::Huffman, &symbols, 10, 0);
    assert!(out.len() <= 6, "{} bytes", out.len());
}

/// Strategy: alphabet size, zero symbol, symbols (random or sparse around `zero`).
fn symbol_case() -> impl Strategy<Value = (u8, u16, Vec<u16>)> {
    (1u8..=16, any::<u16>(), 0u32..4).prop_flat_map(|(bits, zero_seed, shape)| {
        let max = (1u32 << bits) - 1;
        let zero = (u32::from(zero_seed) & max) as u16;
        let any_symbol = (0..=max).prop_map(|v| v as u16);
        let symbols = match shape {
            // Uniform.
            0 => proptest::collection::vec(any_symbol, 0..600).boxed(),
            // Sparse: mostly zero.
            1 => proptest::collection::vec(prop_oneof![8 => Just(zero), 1 => any_symbol], 0..600)
                .boxed(),
            // Skewed over few distinct small symbols.
            2 => proptest::collection::vec((0u32..=max.min(5)).prop_map(|v| v as u16), 0..600)
                .boxed(),
            // Long runs of arbitrary symbols.
            _ => proptest::collection::vec((any_symbol, 1usize..200), 0..8)
                .prop_map(|runs| {
                    runs.into_iter()
                        .flat_map(|(s, n)| std::iter::repeat_n(s, n))
                        .collect()
                })
                .boxed(),
        };
        (Just(bits), Just(zero), symbols)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn entropy_prop_round_trip_every_mode((bits, zero, symbols) in symbol_case()) {
        for mode in EntropyMode::ALL {
            let mut out = Vec::new();
            encode(mode, &symbols, bits, zero, &mut out).unwrap();
            let back = decode(mode, &out, bits, zero, symbols.len());
            prop_assert_eq!(back.as_ref(), Ok(&symbols), "{}", mode.name());
        }
    }

    /// Arbitrary bytes never panic; a successful decode yields exactly `count` symbols in the
    /// alphabet, and re-encoding them gives a payload that decodes to the same symbols (and,
    /// for the modes without encoder choices, the very same bytes).
    #[test]
    fn entropy_prop_arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        bits in 1u8..=16,
        zero_seed in any::<u16>(),
        count in 0usize..3000,
    ) {
        let zero = zero_seed & ((1u32 << bits) - 1) as u16;
        for mode in EntropyMode::ALL {
            if let Ok(symbols) = decode(mode, &bytes, bits, zero, count) {
                prop_assert_eq!(symbols.len(), count);
                prop_assert!(symbols.iter().all(|&s| u32::from(s) >> bits == 0));
                let again = coded(mode, &symbols, bits, zero);
                if matches!(mode, EntropyMode::None | EntropyMode::Zvc) {
                    prop_assert_eq!(&again, &bytes, "{}", mode.name());
                }
                let back = decode(mode, &again, bits, zero, count);
                prop_assert_eq!(back.as_ref(), Ok(&symbols));
            }
        }
    }

    /// Valid payloads with flipped bits, inserted or removed bytes never panic.
    #[test]
    fn entropy_prop_corrupted_payloads_never_panic(
        (bits, zero, symbols) in symbol_case(),
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
        edit in 0u8..3,
    ) {
        for mode in EntropyMode::ALL {
            let mut out = coded(mode, &symbols, bits, zero);
            if out.is_empty() {
                continue;
            }
            for &(pos, bit) in &flips {
                let i = pos % out.len();
                out[i] ^= 1 << bit;
            }
            match edit {
                0 => {}
                1 => { out.pop(); }
                _ => out.insert(flips[0].0 % out.len(), 0xA5),
            }
            if let Ok(back) = decode(mode, &out, bits, zero, symbols.len()) {
                prop_assert_eq!(back.len(), symbols.len());
            }
        }
    }
}

/// CPU time of this thread in seconds (from /proc/thread-self/schedstat), so the benchmark is
/// less distorted by other processes on a shared machine; falls back to wall time.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 * 1e-9)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let wall = std::time::Instant::now();
    let cpu = thread_cpu_seconds();
    let v = f();
    let wall = wall.elapsed().as_secs_f64();
    let cpu = match (cpu, thread_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall,
    };
    (v, wall, cpu)
}

/// Rough throughput on a feature-map-like source (60% zeros, small magnitudes), in release:
/// `cargo test -p codec-core --release --lib entropy_throughput -- --ignored --nocapture`.
/// Prints million symbols per second of thread CPU time (wall time in brackets).
#[test]
#[ignore = "benchmark; run explicitly in release"]
fn entropy_throughput() {
    let n = 13_926_400; // [256, 200, 272]
    let mut rng = Rng(5);
    for (bits, zero, p_zero) in [(8u8, 0u16, 0.6), (4, 0, 0.6), (8, 0, 0.95)] {
        let symbols = sparse_symbols(&mut rng, n, bits, zero, p_zero);
        for mode in EntropyMode::ALL {
            let mut out = Vec::new();
            let (_, enc_wall, enc_cpu) =
                timed(|| encode(mode, &symbols, bits, zero, &mut out).unwrap());
            let (back, dec_wall, dec_cpu) = timed(|| decode(mode, &out, bits, zero, n).unwrap());
            assert_eq!(back, symbols);
            let m = n as f64 / 1e6;
            println!(
                "{bits}-bit p0={p_zero:4} {:12} {:6.3} bits/sym  encode {:6.0} ({:4.0}) Msym/s  \
                 decode {:6.0} ({:4.0}) Msym/s",
                mode.name(),
                out.len() as f64 * 8.0 / n as f64,
                m / enc_cpu,
                m / enc_wall,
                m / dec_cpu,
                m / dec_wall
            );
        }
    }
}
