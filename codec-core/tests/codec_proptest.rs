//! Property tests: random small frames and random configurations round-trip bit-exactly, in
//! display order.

mod common;

use codec_core::codec::{CodecConfig, Structure};
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
                }
            },
        )
}

fn frames() -> impl Strategy<Value = Vec<FeatureFrame>> {
    (1usize..4, 1usize..9, 1usize..9, 1usize..7).prop_flat_map(|(c, h, w, n)| {
        let shape = Shape::new(c, h, w);
        prop::collection::vec(
            prop::collection::vec(prop_oneof![Just(0.0f32), -4.0f32..4.0], shape.len()),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_frames_and_configs_round_trip(cfg in config(), frames in frames()) {
        assert_round_trip(&cfg, &frames);
    }
}
