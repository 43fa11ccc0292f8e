//! The channel transform (KLT) shared by `fmapenc`/`fmapdec` and `fmaptile`/`fmapuntile`:
//! loaded from an `fmap-calibrate --klt` file, named by its digest and component count (in the
//! coded caps as `channel-transform=<digest>:<k>`, in a mosaic's header as two fields), so that
//! a receiver with another file fails with a clear error instead of decoding garbage.

use std::path::Path;

use codec_core::transform::{ChannelTransform, transforms_id};
use fmap_infer::calibration::Calibration;

/// The transforms of every tensor of `path` that has one, keeping `components` (0 = all).
pub fn load(path: &Path, components: usize) -> Result<Vec<ChannelTransform>, String> {
    let calibration = Calibration::load(path).map_err(|e| e.to_string())?;
    let transforms = calibration
        .tensors
        .iter()
        .filter_map(|t| Some(t.transform.as_ref()?.to_codec(&t.name, components)))
        .collect::<Result<Vec<_>, _>>()?;
    if transforms.is_empty() {
        return Err(format!(
            "{} has no channel transform; make one with `fmap-calibrate --model M --split S \
             --klt --out {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(transforms)
}

/// The value of the caps field for `transforms`: `<digest in hex>:<components>`.
pub fn caps_value(transforms: &[ChannelTransform]) -> String {
    let k = transforms.first().map_or(0, ChannelTransform::components);
    format!("{:016x}:{k}", transforms_id(transforms))
}

/// The transforms a stream with caps field `value` was coded with, from the receiver's file;
/// the error says what does not match.
pub fn for_stream(value: &str, path: Option<&Path>) -> Result<Vec<ChannelTransform>, String> {
    let (digest, k) = value
        .split_once(':')
        .and_then(|(d, k)| Some((u64::from_str_radix(d, 16).ok()?, k.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("channel-transform caps field '{value}' is not <hex digest>:<k>"))?;
    matching(digest, k, path, "fmapdec")
}

/// The transforms of digest `digest` keeping `k` components, from the receiving `element`'s
/// `channel-transform` file; the error says what does not match and what to set.
pub fn matching(
    digest: u64,
    k: usize,
    path: Option<&Path>,
    element: &str,
) -> Result<Vec<ChannelTransform>, String> {
    let value = format!("{digest:016x}:{k}");
    let path = path.ok_or_else(|| {
        format!(
            "the stream was coded with a channel transform ({value}); set {element}'s \
             channel-transform to the calibration file the sender used"
        )
    })?;
    let transforms = load(path, k)?;
    if transforms_id(&transforms) != digest {
        return Err(format!(
            "the stream was coded with channel transform {value}, but {} gives {}: use the \
             sender's file",
            path.display(),
            caps_value(&transforms)
        ));
    }
    Ok(transforms)
}

/// The error for a receiver given a `channel-transform` file a stream was not coded with.
pub fn unexpected(path: &str) -> String {
    format!(
        "channel-transform is set ({path}) but the stream was coded without a channel \
         transform; unset it"
    )
}
