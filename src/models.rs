// SPDX-License-Identifier: MIT OR Apache-2.0

//! Where the bundled ONNX models live and which file serves a (scale, precision) request.

use std::path::{Path, PathBuf};

use crate::engine::ModelPrecision;

/// Environment variable naming an extra model folder, searched first.
pub const MODEL_DIR_ENV: &str = "MSTGANSR_MODEL_DIR";

/// Folders searched for bundled models, in order: `$MSTGANSR_MODEL_DIR`; next to the plugin
/// (`<plugin dir>/mstgansr`, `<libdir>/../share/mstgansr/models` as meson installs them, and the
/// source tree's `models/` for a plugin built in `target/<profile>`); the source tree this
/// plugin was compiled from.
pub fn search_dirs(plugin_file: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(MODEL_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(dir) = plugin_file.and_then(Path::parent) {
        dirs.push(dir.join("mstgansr"));
        // <prefix>/lib/<triplet>/gstreamer-1.0 or <prefix>/lib/gstreamer-1.0
        for up in [2, 3] {
            if let Some(prefix) = dir.ancestors().nth(up) {
                dirs.push(prefix.join("share/mstgansr/models"));
            }
        }
        // <repo>/target/<profile>/libgstmstgansr.so
        if let Some(repo) = dir.ancestors().nth(2) {
            dirs.push(repo.join("models"));
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs.dedup();
    dirs
}

/// Which trained model of a scale: for clean input, sharpest (GAN) or most faithful, or for
/// compressed camera and web video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// Perceptual where it ships (x4), else fidelity.
    #[default]
    Auto,
    Perceptual,
    Fidelity,
    /// Trained on x264-compressed and noisy input.
    Real,
    /// For compressed input: real where it ships, else fidelity (perceptual was trained on clean input only).
    Compressed,
    /// The CPU / live-camera tier: ~10x cheaper per pixel, less sharp.
    Fast,
    /// The fast tier trained on compressed input where it ships (`fast-real` files), else fast.
    FastCompressed,
}

impl Variant {
    /// The fast tier for the same kind of input (clean or compressed), which a live source
    /// steps down to when this variant cannot keep up; `None` for the fast tier itself.
    pub fn fast_tier(self) -> Option<Variant> {
        match self {
            Variant::Auto | Variant::Perceptual | Variant::Fidelity => Some(Variant::Fast),
            Variant::Real | Variant::Compressed => Some(Variant::FastCompressed),
            Variant::Fast | Variant::FastCompressed => None,
        }
    }

    /// The file names' variant parts, in the order they are tried.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Variant::Auto => &["perceptual", "fidelity"],
            Variant::Perceptual => &["perceptual"],
            Variant::Fidelity => &["fidelity"],
            Variant::Real => &["real"],
            Variant::Compressed => &["real", "fidelity"],
            Variant::Fast => &["fast"],
            Variant::FastCompressed => &["fast-real", "fast"],
        }
    }
}

/// Candidate file names for a request, best first; `None` takes either precision, INT8 first
/// (the fast path on CPU). With [`Variant::Auto`] the perceptual (GAN) variant is the default at
/// x4, the fidelity one where no GAN model ships.
pub fn candidate_names(
    scale: u32,
    precision: Option<ModelPrecision>,
    variant: Variant,
) -> Vec<String> {
    let suffixes: &[&str] = match precision {
        Some(ModelPrecision::Int8) => &["-int8"],
        Some(ModelPrecision::Fp32) => &[""],
        None => &["-int8", ""],
    };
    let mut names = Vec::new();
    for variant in variant.names() {
        for sfx in suffixes {
            names.push(format!("mstgan-x{scale}-{variant}{sfx}.onnx"));
        }
    }
    names
}

/// Fixture models (tiny, untrained) used only when no trained model for the scale is installed.
pub fn fixture_name(scale: u32) -> String {
    format!("fixture-x{scale}-t5.onnx")
}

/// Where fixtures are looked for: `fixtures/` beside the bundled models (as meson installs
/// them), then the test fixtures of the source tree this plugin was compiled from.
fn fixture_dirs(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = dirs.iter().map(|d| d.join("fixtures")).collect();
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    out.dedup();
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    pub is_fixture: bool,
}

/// Finds the bundled model for `scale`; `Err` lists every place that was searched.
pub fn resolve(
    scale: u32,
    precision: Option<ModelPrecision>,
    variant: Variant,
    plugin_file: Option<&Path>,
) -> Result<Resolved, Vec<PathBuf>> {
    let dirs = search_dirs(plugin_file);
    let mut tried = Vec::new();
    for name in candidate_names(scale, precision, variant) {
        for d in &dirs {
            let p = d.join(&name);
            if p.is_file() {
                return Ok(Resolved {
                    path: p,
                    is_fixture: false,
                });
            }
            tried.push(p);
        }
    }
    // the untrained fixture stands in only for "any trained model", not for a variant asked for
    if variant != Variant::Auto {
        return Err(tried);
    }
    for d in fixture_dirs(&dirs) {
        let p = d.join(fixture_name(scale));
        if p.is_file() {
            return Ok(Resolved {
                path: p,
                is_fixture: true,
            });
        }
        tried.push(p);
    }
    Err(tried)
}

/// Share of a live frame's duration one inference may take: the rest goes to conversions, the
/// pipeline around the element and the jitter of a shared machine.
pub const LIVE_BUDGET_PERCENT: u64 = 80;

/// Whether a model that takes `processing_ns` a frame keeps up with frames every `frame_ns`.
pub fn keeps_up(processing_ns: u64, frame_ns: u64) -> bool {
    u128::from(processing_ns) * 100 <= u128::from(frame_ns) * u128::from(LIVE_BUDGET_PERCENT)
}

/// Whether this CPU's int8 convolutions sum u8 x s8 products in 32 bits (AVX512-VNNI or AVX-VNNI).
/// Without VNNI (AVX2, AVX512BW) onnxruntime's kernels add pairs of products in 16 bits with
/// saturation, which 8-bit weights can overflow; other architectures widen before adding.
pub fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// What `precision=auto` does with the INT8 file it found, and why (said on the bus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoInt8 {
    Keep(String),
    /// Load the FP32 file beside it instead.
    PreferFp32(String),
}

/// The INT8 file is kept unless its 8-bit weights would saturate on this CPU: 7-bit weights
/// (`int8_weight_bits` 7, the shipped files) cannot overflow a 16-bit pair sum (2 x 255 x 64 <
/// 32767), so one file is exact with or without VNNI.
pub fn auto_int8(weight_bits: u8, vnni: bool) -> AutoInt8 {
    match (weight_bits, vnni) {
        (..=7, _) => AutoInt8::Keep(format!(
            "INT8 with {weight_bits}-bit weights: as exact on this CPU's int8 kernels ({}) as on any other",
            if vnni { "VNNI" } else { "no VNNI" }
        )),
        (_, true) => AutoInt8::Keep(
            "INT8 with 8-bit weights: this CPU has VNNI, whose int8 kernels do not saturate".into(),
        ),
        (_, false) => AutoInt8::PreferFp32(
            "its INT8 file has 8-bit weights, which saturate in the int8 kernels of a CPU without \
             VNNI like this one (about 0.2 dB lost at x4): re-quantise it with `python -m \
             mstgan.deploy.quantize` (7-bit weights) to get INT8's speed back"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_tier_steps_down_within_the_same_kind_of_input() {
        assert_eq!(Variant::Fidelity.fast_tier(), Some(Variant::Fast));
        assert_eq!(Variant::Auto.fast_tier(), Some(Variant::Fast));
        assert_eq!(
            Variant::Compressed.fast_tier(),
            Some(Variant::FastCompressed)
        );
        assert_eq!(Variant::Real.fast_tier(), Some(Variant::FastCompressed));
        assert_eq!(Variant::Fast.fast_tier(), None);
        assert_eq!(Variant::FastCompressed.fast_tier(), None);
        // 25 fps: 40 ms a frame, 32 ms for the model
        assert!(keeps_up(32_000_000, 40_000_000));
        assert!(!keeps_up(33_000_000, 40_000_000));
        assert!(keeps_up(0, 0) && !keeps_up(1, 0));
        assert!(!keeps_up(u64::MAX, u64::MAX / 2));
    }

    #[test]
    fn auto_keeps_7_bit_int8_everywhere_and_8_bit_only_with_vnni() {
        assert!(matches!(auto_int8(7, false), AutoInt8::Keep(_)));
        assert!(matches!(auto_int8(7, true), AutoInt8::Keep(_)));
        assert!(matches!(auto_int8(8, true), AutoInt8::Keep(_)));
        let AutoInt8::PreferFp32(why) = auto_int8(8, false) else {
            panic!("8-bit weights without VNNI must fall back to FP32");
        };
        assert!(
            why.contains("VNNI") && why.contains("mstgan.deploy.quantize"),
            "{why}"
        );
    }

    #[test]
    fn names_prefer_int8_then_fp32_and_perceptual() {
        assert_eq!(
            candidate_names(4, None, Variant::Auto),
            vec![
                "mstgan-x4-perceptual-int8.onnx",
                "mstgan-x4-perceptual.onnx",
                "mstgan-x4-fidelity-int8.onnx",
                "mstgan-x4-fidelity.onnx"
            ]
        );
        assert_eq!(
            candidate_names(2, Some(ModelPrecision::Fp32), Variant::Auto),
            vec!["mstgan-x2-perceptual.onnx", "mstgan-x2-fidelity.onnx"]
        );
        assert_eq!(
            candidate_names(4, None, Variant::Real),
            vec!["mstgan-x4-real-int8.onnx", "mstgan-x4-real.onnx"]
        );
        assert_eq!(
            candidate_names(2, Some(ModelPrecision::Int8), Variant::FastCompressed),
            vec!["mstgan-x2-fast-real-int8.onnx", "mstgan-x2-fast-int8.onnx"]
        );
        assert_eq!(
            candidate_names(3, Some(ModelPrecision::Int8), Variant::Compressed),
            vec!["mstgan-x3-real-int8.onnx", "mstgan-x3-fidelity-int8.onnx"]
        );
    }

    #[test]
    fn plugin_in_target_dir_finds_repo_models() {
        let dirs = search_dirs(Some(Path::new("/repo/target/release/libgstmstgansr.so")));
        assert!(dirs.contains(&PathBuf::from("/repo/models")));
        assert!(dirs.contains(&PathBuf::from("/repo/target/release/mstgansr")));
    }
}
