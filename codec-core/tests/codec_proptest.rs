//! Property tests: random small frames and random configurations round-trip bit-exactly, in
//! display order.

mod common;

use codec_core::codec::{ChannelWeights, CodecConfig, Structure};
use codec_core::entropy::EntropyMode;
use codec_core::motion::{MvSharing, SearchMethod};
use codec_core::quant::QuantizerMode;
use codec_core::{FeatureFrame, Shape, Tensor};
use common::assert_round_trip;
use proptest::prelude::*;

fn config() -> impl Strategy<Value = CodecConfig> {
    (
        prop::sample::select(Structure::ALL.to_vec()),
        1u32..5,
        0u16..4,
        2u8..=8,
        prop::sample::select(vec![4usize, 8, 16]),
        prop::bool::ANY,
        0u8..5,
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::select(EntropyMode::ALL.to_vec()),
        (
            prop::sample::select(vec![0.05f32, 0.5, 2.0]),
            prop::sample::select(vec![0.0f32, 0.3]),
            prop::sample::select(vec![0.2f32, 0.5]),
            0usize..3,
            prop::bool::ANY,
            prop::bool::ANY,
            prop::sample::select(vec![1.0f32, 0.5, 0.3]),
            prop::bool::ANY,
        ),
    )
        .prop_map(
            |(
                structure,
                key_interval,
                dead_zone,
                bits,
                block_size,
                full,
                range,
                shared,
                per_channel,
                entropy,
                (
                    quality,
                    lambda,
                    rounding,
                    slice_channels,
                    gradual_refresh,
                    resilient,
                    key_step_ratio,
                    fractional_motion,
                ),
            )| {
                CodecConfig {
                    structure,
                    key_interval,
                    dead_zone,
                    bits,
                    block_size,
                    search: if full {
                        SearchMethod::Full
                    } else {
                        SearchMethod::ThreeStep
                    },
                    search_range: range,
                    mv_sharing: if shared {
                        MvSharing::Shared
                    } else {
                        MvSharing::PerChannel
                    },
                    quantizer: if per_channel {
                        QuantizerMode::PerChannelMinMax
                    } else {
                        QuantizerMode::PerTensorMinMax
                    },
                    entropy,
                    quality,
                    lambda,
                    rounding,
                    key_step_ratio,
                    slice_channels,
                    gradual_refresh,
                    fractional_motion,
                    resilient,
                    channel_weights: Vec::new(),
                }
            },
        )
}

fn frames() -> impl Strategy<Value = Vec<FeatureFrame>> {
    (1usize..4, 1usize..9, 1usize..9, 1usize..7).prop_flat_map(|(c, h, w, n)| {
        let shape = Shape::new(c, h, w);
        prop::collection::vec(
            prop::collection::vec(prop_oneof![8 => -4.0f32..4.0, 2 => Just(0.0f32), 1 => Just(f32::NAN), 1 => Just(f32::INFINITY), 1 => Just(-1e30f32)], shape.len()),
            n,
        )
        .prop_map(move |planes| {
            planes
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let index = 3 * i as u64 + 1;
                    let pts = (i % 2 == 0).then_some(index * 1000);
                    FeatureFrame::new(index, pts, vec![Tensor::from_f32("t", shape, v).unwrap()])
                })
                .collect()
        })
    })
}

/// u8 frames of an 8-bit model with two tensors, for the Model8bit quantizer.
fn u8_frames() -> impl Strategy<Value = Vec<FeatureFrame>> {
    (
        1usize..4,
        1usize..9,
        1usize..9,
        1usize..6,
        0.001f32..1.0,
        0i32..=255,
    )
        .prop_flat_map(|(c, h, w, n, scale, zero_point)| {
            let a = Shape::new(c, h, w);
            let b = Shape::new(1, w, h);
            prop::collection::vec(
                (
                    prop::collection::vec(any::<u8>(), a.len()),
                    prop::collection::vec(any::<u8>(), b.len()),
                ),
                n,
            )
            .prop_map(move |planes| {
                planes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (x, y))| {
                        FeatureFrame::new(
                            i as u64,
                            Some(i as u64),
                            vec![
                                Tensor::from_u8("a", a, x, scale, zero_point).unwrap(),
                                Tensor::from_u8("b", b, y, scale, zero_point).unwrap(),
                            ],
                        )
                    })
                    .collect()
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_frames_and_configs_round_trip(cfg in config(), frames in frames()) {
        assert_round_trip(&cfg, &frames);
    }

    #[test]
    fn random_u8_frames_round_trip_with_the_model_quantizer(
        cfg in config(),
        frames in u8_frames(),
        model8 in prop::bool::ANY,
    ) {
        let cfg = CodecConfig {
            quantizer: if model8 { QuantizerMode::Model8bit } else { cfg.quantizer.clone() },
            ..cfg
        };
        assert_round_trip(&cfg, &frames);
    }

    #[test]
    fn adaptive_frames_with_channel_weights_round_trip(
        cfg in config(),
        frames in frames(),
        u8_frames in u8_frames(),
        weights in prop::collection::vec(0.01f32..100.0, 3),
    ) {
        let weighted = |name: &str, frames: &[FeatureFrame]| CodecConfig {
            structure: Structure::Adaptive,
            channel_weights: vec![ChannelWeights {
                tensor: name.into(),
                weights: weights[..frames[0].tensors[0].shape.channels].to_vec(),
            }],
            ..cfg.clone()
        };
        assert_round_trip(&weighted("t", &frames), &frames);
        // "b" has no weights: its channels keep the tensor's step.
        assert_round_trip(&weighted("a", &u8_frames), &u8_frames);
    }
}
