//! `FeatureFrame::from_raw` on arbitrary bytes: never panics; whatever it accepts serializes
//! back deterministically (raw -> frame -> raw -> frame -> raw gives the same bytes twice).
#![no_main]

use codec_core::FeatureFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = FeatureFrame::from_raw(data) else {
        return;
    };
    let raw = frame
        .to_raw()
        .expect("a frame accepted by from_raw serializes");
    let again = FeatureFrame::from_raw(&raw).expect("a serialized frame parses");
    assert_eq!(
        again.to_raw().expect("serializes"),
        raw,
        "raw serialization is not stable"
    );
});
