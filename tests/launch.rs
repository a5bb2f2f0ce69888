// SPDX-License-Identifier: MIT OR Apache-2.0
//! The plugin as users meet it: `gst-launch-1.0` / `gst-inspect-1.0` processes loading the built
//! `libgstmstgansr.so` from the target folder.

use std::path::{Path, PathBuf};
use std::process::Command;

fn plugin_dir() -> PathBuf {
    // tests run from target/<profile>/deps; the cdylib sits in target/<profile>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libgstmstgansr.so").exists(),
        "{} has no libgstmstgansr.so: build the cdylib first",
        dir.display()
    );
    dir
}

fn gst(tool: &str) -> Command {
    let mut c = Command::new(tool);
    c.env("GST_PLUGIN_PATH", plugin_dir()).env(
        "GST_REGISTRY",
        std::env::temp_dir().join(format!("mstgansr-registry-{}.bin", std::process::id())),
    );
    c
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{} is not a PNG", path.display());
    let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    (w, h)
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("gstreamer tools are installed (scripts/setup.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn png_sequence_pipeline_upscales_every_frame() {
    let dir = std::env::temp_dir().join(format!("mstgansr-launch-{}", std::process::id()));
    let (inp, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&inp).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    run_ok(gst("gst-launch-1.0").args([
        "-q",
        "videotestsrc",
        "num-buffers=6",
        "pattern=ball",
        "!",
        "video/x-raw,width=45,height=31,framerate=25/1",
        "!",
        "pngenc",
        "!",
        "multifilesink",
        &format!("location={}/%05d.png", inp.display()),
    ]));
    run_ok(gst("gst-launch-1.0").args([
        "-q",
        "multifilesrc",
        &format!("location={}/%05d.png", inp.display()),
        "caps=image/png,framerate=25/1",
        "!",
        "pngdec",
        "!",
        "videoconvert",
        "!",
        "mstgansr",
        "scale=4",
        &format!("model-location={}", fixture("fixture-x4-t5.onnx")),
        "execution-provider=cpu",
        "!",
        "videoconvert",
        "!",
        "pngenc",
        "!",
        "multifilesink",
        &format!("location={}/%05d.png", out.display()),
    ]));
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "6 frames in, 6 PNGs out: {files:?}");
    for f in &files {
        assert_eq!(png_size(f), (180, 124), "{}", f.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_lists_properties() {
    let text = run_ok(gst("gst-inspect-1.0").arg("mstgansr"));
    // property lines read `  <name>  : <blurb>`: match whole names, not substrings of blurbs
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let (name, _) = l.split_once(':')?;
            let name = name.trim();
            (l.starts_with("  ") && !name.is_empty() && !name.contains(' ')).then_some(name)
        })
        .collect();
    for prop in [
        "scale",
        "model-location",
        "execution-provider",
        "device-id",
        "precision",
        "engine-cache-dir",
        "threads",
        "feature-cache",
        "max-memory",
        "max-gap",
        "scene-cut-threshold",
        "late-frames",
        "qos",
        "feature-cache-active",
        "window",
        "active-provider",
        "stats",
    ] {
        assert!(names.contains(&prop), "gst-inspect lacks {prop}: {names:?}");
    }
    assert!(!names.contains(&"no-such-property"));
}

#[test]
fn absent_onnxruntime_says_how_to_install_it() {
    let out = gst("gst-launch-1.0")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.32.0")
        .args([
            "videotestsrc",
            "num-buffers=2",
            "!",
            "video/x-raw,width=16,height=16",
            "!",
            "mstgansr",
            "scale=4",
            &format!("model-location={}", fixture("fixture-x4-t5.onnx")),
            "!",
            "fakesink",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "must fail without onnxruntime:\n{text}"
    );
    assert!(
        text.contains("onnxruntime could not be loaded")
            && text.contains("pip install onnxruntime"),
        "{text}"
    );
}
