// SPDX-License-Identifier: MIT OR Apache-2.0

//! The MST-GAN model contract, checked when a model is loaded so that a wrong file fails at
//! start with a message that names it, not at the first frame with onnxruntime's words.
//!
//! Whole model: one input `frames` float32 `[N, T, 3, H, W]`, output float32 `[N, 3, sH, sW]`,
//! `metadata_props` with `scale`, `window` (= T), `precision` and `version`. Split pair: the
//! extractor `frame [N,3,H,W] -> feat0..2`, the fusion `frames, feat0..2 -> upscaled`, both
//! tagged with `part` and cut from the same model.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::config::{EngineError, ModelPrecision};

/// What the model file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub scale: u32,
    pub window: usize,
    pub precision: ModelPrecision,
    pub version: String,
    /// Bits of an INT8 file's weights: 7 (`int8_weight_bits` metadata) or 8 (files made before
    /// it was recorded); `None` for FP32.
    pub int8_weight_bits: Option<u8>,
    /// The network (`arch` metadata): `mst` (the multi-frame network; also assumed when the
    /// key is missing) or `fast` (early fusion), which needs far less memory per pixel.
    pub arch: Arch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Mst,
    Fast,
}

pub(super) fn meta(session: &Session, key: &str) -> Option<String> {
    session.metadata().ok().and_then(|m| m.custom(key))
}

/// `X.onnx` for a part file `X.extractor.onnx` / `X.fusion.onnx`.
fn whole_for_part(path: &Path, part: &str) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let whole = name
        .strip_suffix(&format!(".{part}.onnx"))
        .map(|stem| format!("{stem}.onnx"))
        .unwrap_or_else(|| "the model file without the part suffix".into());
    path.with_file_name(whole)
}

/// A tensor outlet's element type and shape (-1 = dynamic), or why it is not a tensor.
fn tensor_of(dtype: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
    }
}

fn describe(ty: TensorElementType, shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| {
            if *d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("{ty:?} [{}]", dims.join(", "))
}

/// Checks a float32 tensor of the given rank whose fixed dimensions (`Some`) match.
fn check_tensor(
    what: &str,
    dtype: &ValueType,
    expect: &[Option<i64>],
    layout: &str,
) -> Result<(), String> {
    let Some((ty, shape)) = tensor_of(dtype) else {
        return Err(format!("{what} is not a tensor; expected float32 {layout}"));
    };
    let bad = ty != TensorElementType::Float32
        || shape.len() != expect.len()
        || shape
            .iter()
            .zip(expect)
            .any(|(d, e)| matches!(e, Some(e) if *d >= 0 && d != e));
    if bad {
        return Err(format!(
            "{what} is {}; expected float32 {layout}",
            describe(ty, &shape)
        ));
    }
    Ok(())
}

/// Reads and checks the whole model's metadata and graph signature.
pub(super) fn whole_model(session: &Session, path: &Path) -> Result<ModelInfo, EngineError> {
    let contract = |reason: String| EngineError::Contract {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(part) = meta(session, "part") {
        return Err(EngineError::PartGivenAsModel {
            path: path.to_path_buf(),
            whole: whole_for_part(path, &part),
            part,
        });
    }
    let get = |key: &str| {
        meta(session, key).ok_or_else(|| {
            contract(format!(
                "metadata_props has no `{key}` (export it with `python -m mstgan.deploy.export`)"
            ))
        })
    };
    let scale: u32 = get("scale")?
        .parse()
        .map_err(|_| contract("metadata `scale` is not an integer".into()))?;
    let window: usize = get("window")?
        .parse()
        .map_err(|_| contract("metadata `window` is not an integer".into()))?;
    if window.is_multiple_of(2) {
        return Err(contract(format!("window {window} must be odd")));
    }
    let precision = get("precision")?;
    let precision = ModelPrecision::parse(&precision).ok_or_else(|| {
        contract(format!(
            "metadata `precision` is `{precision}`, expected fp32 or int8"
        ))
    })?;
    let version = get("version")?;
    let int8_weight_bits = match precision {
        ModelPrecision::Fp32 => None,
        ModelPrecision::Int8 => Some(match meta(session, "int8_weight_bits").as_deref() {
            None => 8,
            Some("7") => 7,
            Some("8") => 8,
            Some(other) => {
                return Err(contract(format!(
                    "metadata `int8_weight_bits` is `{other}`, expected 7 or 8"
                )));
            }
        }),
    };

    let arch = match meta(session, "arch").as_deref() {
        None | Some("mst") => Arch::Mst,
        Some("fast") => Arch::Fast,
        Some(other) => {
            return Err(contract(format!(
                "metadata `arch` is `{other}`, expected mst or fast"
            )));
        }
    };

    let inputs = session.inputs();
    let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
    if names != ["frames"] {
        return Err(contract(format!(
            "the graph's inputs are {names:?}; expected one input `frames`"
        )));
    }
    let t = window as i64;
    check_tensor(
        "input `frames`",
        inputs[0].dtype(),
        &[None, Some(t), Some(3), None, None],
        &format!("[N, T={t}, 3, H, W] (T from the `window` metadata)"),
    )
    .map_err(contract)?;
    let outputs = session.outputs();
    let Some(out) = outputs.first() else {
        return Err(contract("the graph has no output".into()));
    };
    check_tensor(
        &format!("output `{}`", out.name()),
        out.dtype(),
        &[None, Some(3), None, None],
        "[N, 3, sH, sW]",
    )
    .map_err(contract)?;
    Ok(ModelInfo {
        scale,
        window,
        precision,
        version,
        int8_weight_bits,
        arch,
    })
}

/// Checks that an extractor/fusion pair was cut from `whole` and has the expected signature;
/// returns the feature channels.
pub(super) fn split_pair(
    whole: &Session,
    model_path: &Path,
    extractor: (&Session, &Path),
    fusion: (&Session, &Path),
) -> Result<usize, String> {
    for (s, path, part) in [
        (extractor.0, extractor.1, "extractor"),
        (fusion.0, fusion.1, "fusion"),
    ] {
        if meta(s, "part").as_deref() != Some(part) {
            return Err(format!("{} is not an MST-GAN {part} graph", path.display()));
        }
    }
    for key in [
        "scale",
        "window",
        "training_steps",
        "version",
        "variant",
        "interpolation",
    ] {
        if meta(fusion.0, key) != meta(whole, key) || meta(extractor.0, key) != meta(whole, key) {
            return Err(format!(
                "{} / {} were cut from another model (`{key}` differs from {}): re-export them \
                 with `python -m mstgan.deploy.release --split` or delete them",
                extractor.1.display(),
                fusion.1.display(),
                model_path.display()
            ));
        }
    }
    let channels = meta(fusion.0, "feature_channels")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{} has no `feature_channels` metadata", fusion.1.display()))?;
    let names: Vec<&str> = fusion.0.inputs().iter().map(|i| i.name()).collect();
    let ext_in: Vec<&str> = extractor.0.inputs().iter().map(|i| i.name()).collect();
    if names != ["frames", "feat0", "feat1", "feat2"]
        || ext_in != ["frame"]
        || extractor.0.outputs().len() != 3
    {
        return Err(format!(
            "{} / {} do not have the expected inputs and outputs",
            extractor.1.display(),
            fusion.1.display()
        ));
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_files_name_their_whole_model() {
        assert_eq!(
            whole_for_part(Path::new("/m/mstgan-x4.extractor.onnx"), "extractor"),
            PathBuf::from("/m/mstgan-x4.onnx")
        );
        assert_eq!(
            whole_for_part(Path::new("/m/x.fusion.onnx"), "fusion"),
            PathBuf::from("/m/x.onnx")
        );
    }
}
