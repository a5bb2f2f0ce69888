// SPDX-License-Identifier: MIT OR Apache-2.0

//! Finding and loading the onnxruntime shared library (ort's `load-dynamic`), once per process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::EngineError;

static ENVIRONMENT: OnceLock<Result<(ort::environment::Environment, PathBuf), String>> =
    OnceLock::new();

/// Returns the process-wide onnxruntime environment, loading the library on first use.
pub fn environment() -> Result<(&'static ort::environment::Environment, &'static Path), EngineError>
{
    let res = ENVIRONMENT.get_or_init(|| {
        let path = find_library().map_err(|tried| {
            let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            format!(
                "searched: {}",
                if list.is_empty() {
                    "nothing".into()
                } else {
                    list.join(", ")
                }
            )
        })?;
        let builder = ort::init_from(&path)
            .map_err(|e| format!("{} could not be loaded: {e}", path.display()))?;
        let env = builder
            .with_name("mstgansr")
            .build()
            .map_err(|e| format!("{}: creating the environment failed: {e}", path.display()))?;
        Ok((env, path))
    });
    match res {
        Ok((env, path)) => Ok((env, path.as_path())),
        Err(detail) => Err(EngineError::RuntimeMissing(detail.clone())),
    }
}

fn lib_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    // the longest name is the fully versioned file (libonnxruntime.so.1.32.0)
    found.sort_by_key(|p| p.as_os_str().len());
    found.pop()
}

fn python_site_dirs(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64", "local/lib"] {
        let Ok(rd) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with("python3") {
                out.push(e.path().join("site-packages"));
                out.push(e.path().join("dist-packages"));
            }
        }
    }
    out
}

/// `ORT_DYLIB_PATH`, then PyPI installs (active venv, the source tree's `.venv`, user and
/// system site-packages), then system library folders, then asking `python3` itself.
pub fn find_library() -> Result<PathBuf, Vec<PathBuf>> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        // relative paths would resolve against the executable's folder (e.g. /usr/bin)
        let p = if p.is_relative() {
            std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
        } else {
            p
        };
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
        return Err(tried);
    }
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(v));
    }
    prefixes.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push(PathBuf::from(home).join(".local"));
    }
    prefixes.extend(["/usr/local", "/usr"].map(PathBuf::from));
    for prefix in &prefixes {
        for site in python_site_dirs(prefix) {
            let capi = site.join("onnxruntime/capi");
            if let Some(lib) = lib_in(&capi) {
                return Ok(lib);
            }
            tried.push(capi);
        }
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        if let Some(lib) = lib_in(Path::new(dir)) {
            return Ok(lib);
        }
        tried.push(PathBuf::from(dir));
    }
    let asked = Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output();
    if let Ok(out) = asked
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(lib) = lib_in(&dir) {
            return Ok(lib);
        }
        tried.push(dir);
    }
    Err(tried)
}
