//! Every entropy mode on arbitrary payloads, and round trips of arbitrary symbol sequences.
//!
//! Input layout: byte 0 mode (id mod 5), byte 1 alphabet bits (1 + b mod 16), bytes 2..4 zero
//! symbol (u16 LE, masked to the alphabet), bytes 4..6 symbol count (u16 LE, so bounded), then
//! the payload. The payload is (1) decoded with that count, and (2) read as u16 LE symbols
//! (masked to the alphabet) that must round-trip through encode/decode.
#![no_main]

use codec_core::entropy::{EntropyMode, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let mode = EntropyMode::ALL[usize::from(data[0]) % EntropyMode::ALL.len()];
    let bits = 1 + data[1] % 16;
    let mask = ((1u32 << bits) - 1) as u16;
    let zero = u16::from_le_bytes([data[2], data[3]]) & mask;
    let count = usize::from(u16::from_le_bytes([data[4], data[5]]));
    let payload = &data[6..];

    // (1) Hostile payload: typed error or exactly `count` symbols of the alphabet.
    if let Ok(symbols) = decode(mode, payload, bits, zero, count) {
        assert_eq!(symbols.len(), count);
        assert!(symbols.iter().all(|&s| s & !mask == 0));
        let mut again = Vec::new();
        encode(mode, &symbols, bits, zero, &mut again).expect("decoded symbols encode");
        if matches!(mode, EntropyMode::None | EntropyMode::Zvc) {
            // These modes have no encoder choices: one valid payload per sequence.
            assert_eq!(again, payload);
        }
        assert_eq!(
            decode(mode, &again, bits, zero, count).as_ref(),
            Ok(&symbols)
        );
    }

    // (2) Round trip of the payload read as symbols.
    let symbols: Vec<u16> = payload
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) & mask)
        .collect();
    let mut coded = Vec::new();
    encode(mode, &symbols, bits, zero, &mut coded).expect("symbols in the alphabet encode");
    assert_eq!(
        decode(mode, &coded, bits, zero, symbols.len()).as_ref(),
        Ok(&symbols)
    );
});
