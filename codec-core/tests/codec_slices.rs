//! Slices of the adaptive mode: a unit splits into pieces and reassembles from any subset that
//! has its head; a lost slice costs its channels (concealed, counted) until the next key unit,
//! and every other channel stays exactly what the encoder reconstructed.

mod common;

use codec_core::codec::{
    CodecConfig, CodecError, CodedUnit, Decoder, SLICE_OVERHEAD, UnitKind, assemble_unit,
    unit_pieces,
};
use codec_core::{FeatureFrame, Shape};
use common::*;

const SHAPE: Shape = Shape::new(8, 12, 12);
const WIDTH: usize = 3; // slices of channels 0..3, 3..6, 6..8

fn units(frames: u64, key_interval: u32) -> Vec<CodedUnit> {
    let cfg = CodecConfig {
        slice_channels: WIDTH,
        key_interval,
        ..CodecConfig::default()
    };
    let frames: Vec<_> = (0..frames)
        .map(|i| moving_frame(i, SHAPE, (0.5, 1.0)))
        .collect();
    encode_all(&cfg, &frames)
}

fn values(f: &FeatureFrame) -> Vec<f32> {
    f.tensors[0].to_f32()
}

/// Channels of `a` and `b` that differ.
fn differing_channels(a: &FeatureFrame, b: &FeatureFrame) -> Vec<usize> {
    let plane = SHAPE.plane_len();
    let (a, b) = (values(a), values(b));
    (0..SHAPE.channels)
        .filter(|&c| a[c * plane..(c + 1) * plane] != b[c * plane..(c + 1) * plane])
        .collect()
}

#[test]
fn a_unit_splits_into_its_head_and_slices_and_reassembles_from_them_in_any_order() {
    for unit in units(3, 100) {
        let pieces = unit_pieces(&unit.data).unwrap();
        assert_eq!(pieces.len(), 1 + SHAPE.channels.div_ceil(WIDTH));
        assert_eq!(pieces.concat(), unit.data);
        assert!(pieces[1..].iter().all(|p| p.len() >= SLICE_OVERHEAD));
        let mut shuffled = pieces.clone();
        shuffled.reverse();
        assert_eq!(assemble_unit(&shuffled).unwrap(), unit.data);
        // Without its head nothing can be decoded.
        assert!(matches!(
            assemble_unit(&pieces[1..]),
            Err(CodecError::Invalid(_))
        ));
    }
}

#[test]
fn slices_of_another_unit_and_repeats_are_left_out() {
    let all = units(3, 100);
    let (a, b) = (
        unit_pieces(&all[1].data).unwrap(),
        unit_pieces(&all[2].data).unwrap(),
    );
    let mixed = [a[0], b[1], a[2], a[2], b[3]];
    let assembled = assemble_unit(&mixed).unwrap();
    assert_eq!(assembled, [a[0], a[2]].concat());
}

#[test]
fn a_lost_slice_conceals_its_channels_until_the_next_key_unit() {
    let all = units(8, 5); // keys at 0 and 5
    assert_eq!(all[5].kind, UnitKind::AdaptiveKey);
    let mut dec = Decoder::new();
    for (i, unit) in all.iter().enumerate() {
        let pieces = unit_pieces(&unit.data).unwrap();
        // Frame 2 loses its second slice (channels 3..6).
        let kept: Vec<&[u8]> = if i == 2 {
            pieces
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != 2)
                .map(|(_, p)| *p)
                .collect()
        } else {
            pieces
        };
        let out = dec.decode(&assemble_unit(&kept).unwrap()).unwrap();
        let recon = unit.reconstruction.as_ref().unwrap();
        let differ = differing_channels(&out[0], recon);
        let (channels, slices) = dec.concealed();
        match i {
            2 => {
                assert_eq!((channels, slices), (3, 1));
                assert!(differ.iter().all(|c| (3..6).contains(c)) && !differ.is_empty());
            }
            3 | 4 => {
                // Still concealed (predicted from a concealed reference), the others exact.
                assert_eq!((channels, slices), (3, 0));
                assert!(differ.iter().all(|c| (3..6).contains(c)));
            }
            _ => {
                assert_eq!((channels, slices), (0, 0), "frame {i}");
                assert!(differ.is_empty(), "frame {i}: {differ:?}");
            }
        }
    }
}

#[test]
fn a_lost_unit_is_concealed_only_when_asked() {
    let all = units(4, 100);
    let decode_without_unit_1 = |conceal: bool| {
        let mut dec = Decoder::new();
        dec.set_concealment(conceal);
        dec.decode(&all[0].data).unwrap();
        let r = dec.decode(&all[2].data);
        (r, dec.concealed())
    };
    let (strict, _) = decode_without_unit_1(false);
    assert_eq!(
        strict,
        Err(CodecError::MissingReference {
            frame: 2,
            reference: 1
        })
    );
    let (lenient, concealed) = decode_without_unit_1(true);
    let out = lenient.unwrap();
    assert_eq!(out[0].index, 2);
    assert_eq!(concealed, (SHAPE.channels, 0));
}

#[test]
fn a_key_unit_missing_slices_conceals_from_the_previous_frame_or_is_refused() {
    let all = units(7, 5);
    let key = unit_pieces(&all[5].data).unwrap();
    let partial = assemble_unit(&[key[0], key[1], key[3]]).unwrap();
    // With an earlier frame held, the missing channels come from it.
    let mut dec = Decoder::new();
    for u in &all[..5] {
        dec.decode(&u.data).unwrap();
    }
    let out = dec.decode(&partial).unwrap();
    assert_eq!(dec.concealed(), (3, 1));
    let differ = differing_channels(&out[0], all[5].reconstruction.as_ref().unwrap());
    assert!(differ.iter().all(|c| (3..6).contains(c)));
    // A receiver that starts at this key has nothing to conceal from.
    assert!(matches!(
        Decoder::new().decode(&partial),
        Err(CodecError::Invalid(_))
    ));
}
