// SPDX-License-Identifier: MIT OR Apache-2.0
//! The plugin as users meet it: `gst-launch-1.0` / `gst-inspect-1.0` processes loading the built
//! `libgstmstgansr.so` from the target folder.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, output_text};
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
    let text = output_text(&out);
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
    let text = output_text(&out);
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

/// stdout + stderr of a short gst-launch-1.0 run of the x2 fixture on 64x48 test frames with
/// `props` (which must succeed).
fn launch_with(props: &str) -> String {
    let mut args: Vec<String> = "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 ! videoconvert ! mstgansr scale=2"
        .split(' ')
        .map(String::from)
        .collect();
    args.push(format!("model-location={}", fixture("fixture-x2-t5.onnx")));
    args.extend(props.split_whitespace().map(String::from));
    args.extend(["!", "fakesink"].map(String::from));
    run_ok(gst("gst-launch-1.0").args(&args))
}

#[test]
fn threads_beyond_the_cores_are_capped_with_a_warning() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let text = launch_with(&format!("threads={}", cores + 62));
    assert!(
        text.contains(&format!(
            "threads={} is more than the {cores} core(s) available: using {cores}",
            cores + 62
        )),
        "{text}"
    );
    // the biggest value the property takes is capped too, not blamed on the model
    let text = launch_with("threads=2147483647");
    assert!(text.contains("using"), "{text}");
    assert!(!text.contains("bad_alloc"), "{text}");
}

#[test]
fn tile_size_and_overlap_are_bounded_with_a_warning() {
    let text = launch_with("tile-size=1 tile-overlap=100000");
    assert!(
        text.contains("tile-size=1 is below the smallest useful tile: using 16"),
        "{text}"
    );
    assert!(
        text.contains("tile-overlap=100000 is more context than the network uses: using 64"),
        "{text}"
    );
}

#[test]
fn overlap_default_is_documented_as_used() {
    let text = run_ok(gst("gst-inspect-1.0").arg("mstgansr"));
    let blurb = text
        .split("tile-overlap")
        .nth(1)
        .expect("tile-overlap listed");
    assert!(blurb.contains("0 = automatic, 32"), "{blurb}");
    assert_eq!(gstmstgansr::upscale::upscaler::DEFAULT_OVERLAP, 32);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("0 = 32"),
        "README's property table says the default"
    );
}

#[test]
fn a_cpu_only_machine_gets_information_not_a_warning() {
    if gstmstgansr::engine::gpu_present() {
        return;
    }
    let text = launch_with("execution-provider=auto");
    assert!(!text.contains("WARNING"), "{text}");
    assert_eq!(
        text.matches("execution-provider=auto runs on the CPU provider")
            .count(),
        1,
        "{text}"
    );
}

#[test]
fn precision_auto_says_which_file_it_loaded_and_why() {
    // the bundled fast model: its INT8 file has 7-bit weights, exact with or without VNNI
    let text = run_ok(gst("gst-launch-1.0").args(
        "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48 ! videoconvert ! mstgansr scale=2 variant=fast ! fakesink"
            .split(' '),
    ));
    assert!(
        text.contains("mstgan-x2-fast-int8.onnx: INT8 with 7-bit weights"),
        "{text}"
    );
}

/// A live 64x48 source at `fps` through `mstgansr scale=2 variant=fidelity` whose bundled
/// models are fixtures: the MST one as fidelity, the fast one as the fast tier.
fn live_tier_run(fps: u32, props: &str) -> String {
    live_tier_pipeline(fps, 6, props, "")
}

/// [`live_tier_run`] with `n` frames and `after` between the element and the sink.
fn live_tier_pipeline(fps: u32, n: u32, props: &str, after: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mstgansr-tier-{}-{fps}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("fixture-x2-t5.onnx"),
        dir.join("mstgan-x2-fidelity.onnx"),
    )
    .unwrap();
    std::fs::copy(
        fixture("fixture-x2-t5-fast.onnx"),
        dir.join("mstgan-x2-fast.onnx"),
    )
    .unwrap();
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={n} ! video/x-raw,width=64,height=48,framerate={fps}/1 \
         ! videoconvert ! mstgansr scale=2 variant=fidelity precision=fp32 execution-provider=cpu {props} \
         {after} ! fakesink sync=true"
    );
    let text = run_ok(
        gst("gst-launch-1.0")
            .env("MSTGANSR_MODEL_DIR", &dir)
            .args(pipeline.split_whitespace()),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    text
}

#[test]
fn a_live_source_the_model_cannot_keep_up_with_runs_the_fast_tier() {
    // 10,000 frames/s: 80 us a frame, which no model here keeps up with
    let text = live_tier_run(10_000, "");
    assert!(
        text.contains("so the fast tier") && text.contains("mstgan-x2-fast.onnx"),
        "{text}"
    );
    // the fast fixture cannot keep up either, and the message says what follows
    assert!(text.contains("does not keep up either"), "{text}");
    // pinned keeps the model asked for
    let text = live_tier_run(10_000, "live-tier=pinned");
    assert!(!text.contains("fast tier"), "{text}");
    // one frame a second: the fidelity fixture keeps up and stays
    let text = live_tier_run(1, "");
    assert!(!text.contains("fast tier"), "{text}");
}

#[test]
fn sustained_lateness_on_a_live_source_steps_down_once() {
    // the fixture keeps up with 25 frames/s at caps, then a sink that takes 120 ms a frame makes
    // most outputs late: after two seconds of it the fast tier takes over, once
    let slow_sink = "! identity sleep-time=120000";
    let text = live_tier_pipeline(25, 125, "late-frames=drop", slow_sink);
    assert_eq!(
        text.matches("so the fast tier").count(),
        1,
        "one step down: {text}"
    );
    assert!(
        text.contains("sustained lateness") && text.contains("mstgan-x2-fast.onnx"),
        "{text}"
    );
    // pinned keeps the model asked for, late or not
    let text = live_tier_pipeline(25, 125, "late-frames=drop live-tier=pinned", slow_sink);
    assert!(!text.contains("fast tier"), "{text}");
}
