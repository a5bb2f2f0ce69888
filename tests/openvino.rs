// SPDX-License-Identifier: MIT OR Apache-2.0
//! execution-provider=openvino on onnxruntime-openvino (scripts/setup.sh installs it in
//! .ort-openvino): the element's output must match onnxruntime's CPU golden output, on every
//! path (whole graph, feature cache, fast tier) and at every frame size a stream brings.

mod common;

use std::path::PathBuf;
use std::sync::Once;

use common::*;
use gstmstgansr::engine::{Engine, EngineConfig, Provider};

/// Points this test process at the OpenVINO build of onnxruntime before anything loads one.
fn openvino_runtime() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        let capi = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ort-openvino/onnxruntime/capi");
        let lib = std::fs::read_dir(&capi)
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", capi.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().contains("libonnxruntime.so."))
            .max_by_key(|p| p.as_os_str().len())
            .expect("no libonnxruntime.so.<version> in .ort-openvino: run scripts/setup.sh");
        // SAFETY: set once, before this process starts onnxruntime or reads the variable
        unsafe { std::env::set_var("ORT_DYLIB_PATH", lib) };
    });
}

fn golden(name: &str, window: u32) {
    openvino_runtime();
    golden_on(name, window, "openvino");
}

#[test]
fn openvino_matches_onnxruntime_golden_with_and_without_the_feature_cache() {
    // both have extractor/fusion pairs: the cache must run with them
    golden("fixture-x4-t5", 5);
    golden("fixture-x3-t5", 5);
}

#[test]
fn openvino_runs_the_fast_tier() {
    golden("fixture-x4-t5-fast", 5);
    golden("fixture-x2-t5-fast", 5);
}

fn window(w: usize, h: usize, batch: usize) -> Vec<f32> {
    (0..batch * 5 * 3 * w * h)
        .map(|i| ((i * 7919) % 251) as f32 / 250.0)
        .collect()
}

fn upscale(provider: Provider, w: usize, h: usize, batch: usize) -> Vec<f32> {
    let cfg = EngineConfig::new(fixture("fixture-x4-t5.onnx"), 4)
        .with_provider(provider)
        .with_threads(1)
        .with_feature_cache(false);
    let mut e = Engine::new(&cfg).unwrap();
    let frames = window(w, h, batch);
    let mut out = vec![0.0; batch * 3 * 16 * w * h];
    e.run(&frames, batch, w, h, &mut out).unwrap();
    out
}

#[test]
fn openvino_compiles_each_frame_size_and_batch() {
    openvino_runtime();
    // one engine: sizes one after another and back again (a compiled size is reused)
    let cfg = EngineConfig::new(fixture("fixture-x4-t5.onnx"), 4)
        .with_provider(Provider::OpenVino)
        .with_threads(1)
        .with_feature_cache(false);
    let mut e = Engine::new(&cfg).unwrap();
    assert_eq!(e.active_provider().as_str(), "openvino");
    for (w, h, batch) in [(23, 17, 1), (40, 28, 1), (23, 17, 2), (23, 17, 1)] {
        let frames = window(w, h, batch);
        let mut got = vec![0.0; batch * 3 * 16 * w * h];
        e.run(&frames, batch, w, h, &mut got).unwrap();
        let want = upscale(Provider::Cpu, w, h, batch);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 2e-3,
            "{w}x{h} batch {batch}: OpenVINO differs from CPU by {worst}"
        );
    }
    // a window of the wrong length is an error, not a crash
    let mut out = vec![0.0; 3 * 16 * 23 * 17];
    assert!(e.run(&[0.0; 10], 1, 23, 17, &mut out).is_err());
}

#[test]
fn auto_picks_openvino_on_this_onnxruntime() {
    openvino_runtime();
    // this build has no GPU provider, so auto goes straight to OpenVINO, before plain CPU
    let e = Engine::new(&EngineConfig::new(fixture("fixture-x4-t5.onnx"), 4)).unwrap();
    assert_eq!(e.active_provider().as_str(), "openvino");
    assert!(
        e.skipped_providers()
            .iter()
            .all(|(p, _)| p.as_str() != "openvino")
    );
}
