// SPDX-License-Identifier: MIT OR Apache-2.0

//! The split-graph feature cache: a model `X.onnx` may come with `X.extractor.onnx`
//! (`frame [N,3,H,W]` -> `feat0..2`, the per-frame features at 3 pyramid levels) and
//! `X.fusion.onnx` (`frames` + `feat0..2 [N,T,C,h,w]` -> `upscaled`), the same network cut in
//! two. Each frame sits in T windows; with the pair its features are computed once and reused.

use std::path::{Path, PathBuf};

use ort::session::{RunOptions, Session};
use ort::value::TensorRef;

use super::config::{ActiveProvider, EngineConfig};
use super::contract;
use super::providers::session_builder;
use super::shaped::Graph;

/// Whether the per-frame feature cache runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureCache {
    /// The model's extractor/fusion pair runs: one extractor pass per frame.
    Active,
    /// Switched off by the caller.
    Disabled,
    /// The model has no extractor/fusion pair next to it (an older or third-party model).
    Absent,
    /// A pair is there but cannot be used (the reason); the whole graph runs instead.
    Rejected(String),
}

/// One frame's output of the extractor graph: 3 pyramid levels, each planar `[C, h, w]`.
#[derive(Debug)]
pub struct Features {
    levels: [Vec<f32>; 3],
    dims: [(usize, usize); 3],
}

/// The extractor and fusion graphs of a model and the buffers that stack a window's features.
pub(super) struct SplitGraphs {
    extractor: Graph,
    fusion: Graph,
    channels: usize,
    stacked: [Vec<f32>; 3],
}

/// `X.extractor.onnx` and `X.fusion.onnx` for the model file `X.onnx`.
#[must_use]
pub fn split_paths(model: &Path) -> Option<(PathBuf, PathBuf)> {
    let stem = model.file_stem()?.to_str()?;
    Some((
        model.with_file_name(format!("{stem}.extractor.onnx")),
        model.with_file_name(format!("{stem}.fusion.onnx")),
    ))
}

/// Loads the pair next to `cfg.model_path` if it is there and usable.
pub(super) fn load(
    cfg: &EngineConfig,
    active: ActiveProvider,
    whole: &Session,
) -> (Option<SplitGraphs>, FeatureCache) {
    if !cfg.feature_cache {
        return (None, FeatureCache::Disabled);
    }
    match split_paths(&cfg.model_path) {
        Some((ext, fus)) if ext.is_file() && fus.is_file() => {
            match load_pair(cfg, active, whole, &ext, &fus) {
                Ok(split) => (Some(split), FeatureCache::Active),
                Err(reason) => (None, FeatureCache::Rejected(reason)),
            }
        }
        _ => (None, FeatureCache::Absent),
    }
}

/// Loads the pair on the provider the whole graph got, and checks that it was cut from that
/// same model (a stale pair would silently give another network's output).
fn load_pair(
    cfg: &EngineConfig,
    active: ActiveProvider,
    whole: &Session,
    ext_path: &Path,
    fus_path: &Path,
) -> Result<SplitGraphs, String> {
    let load_on = active.as_request().loads_on();
    let load_one = |path: &Path| -> Result<Session, String> {
        let (b, _, _) = session_builder(cfg, load_on).map_err(|e| e.to_string())?;
        // the two graphs run back to back on separate thread pools: a pool that spins after
        // its run takes the cores the other graph needs next (measured: fusion 235 -> 270 ms
        // after an extractor run, and no gain from the cache at all), so both pools sleep
        let mut b = b.with_intra_op_spinning(false).map_err(|e| e.to_string())?;
        b.commit_from_file(path)
            .map_err(|e| format!("{} could not be loaded: {e}", path.display()))
    };
    let (extractor, fusion) = (load_one(ext_path)?, load_one(fus_path)?);
    let channels = contract::split_pair(
        whole,
        &cfg.model_path,
        (&extractor, ext_path),
        (&fusion, fus_path),
    )?;
    let provider = active.as_request();
    Ok(SplitGraphs {
        extractor: Graph::new(extractor, ext_path, cfg, provider, false),
        fusion: Graph::new(fusion, fus_path, cfg, provider, false),
        channels,
        stacked: Default::default(),
    })
}

impl SplitGraphs {
    pub(super) fn channels(&self) -> usize {
        self.channels
    }

    /// Runs the extractor graph on one frame (`[3, H, W]` planar RGB).
    pub(super) fn extract(
        &mut self,
        rgb: &[f32],
        width: usize,
        height: usize,
        options: &RunOptions,
    ) -> Result<Features, String> {
        let input = TensorRef::from_array_view(([1usize, 3, height, width], rgb))
            .map_err(|e| e.to_string())?;
        let outputs = self
            .extractor
            .session(&[("frame", &[1, 3, height, width])])?
            .run_with_options(ort::inputs!["frame" => input], options)
            .map_err(|e| e.to_string())?;
        let mut levels: [Vec<f32>; 3] = Default::default();
        let mut dims = [(0, 0); 3];
        for (lvl, (level, dim)) in levels.iter_mut().zip(dims.iter_mut()).enumerate() {
            let (shape, data) = outputs[lvl]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            if shape.len() != 4 || shape[0] != 1 || shape[1] != self.channels as i64 {
                return Err(format!(
                    "level {lvl} has shape {shape:?}, expected [1, {}, h, w]",
                    self.channels
                ));
            }
            *dim = (shape[2] as usize, shape[3] as usize);
            *level = data.to_vec();
        }
        Ok(Features { levels, dims })
    }

    /// Runs the fusion graph on `batch` windows (`frames` `[N,T,3,H,W]`, `feats[i]` of frame i
    /// in that order) and hands its output to `take`.
    pub(super) fn fuse(
        &mut self,
        frames: &[f32],
        feats: &[&Features],
        (batch, width, height): (usize, usize, usize),
        options: &RunOptions,
        take: impl FnOnce(&ort::value::DynValue) -> Result<(), String>,
    ) -> Result<(), String> {
        let t = feats.len() / batch.max(1);
        let mut stacked = std::mem::take(&mut self.stacked);
        let dims = stack(feats, &mut stacked);
        let res = dims.and_then(|dims| {
            self.fuse_stacked(
                frames,
                [&stacked[0], &stacked[1], &stacked[2]],
                dims,
                (batch, t, self.channels, width, height),
                options,
                take,
            )
        });
        self.stacked = stacked;
        res
    }

    /// The fusion graph on features already stacked `[n, t, c, h_l, w_l]` per level.
    pub(super) fn fuse_stacked(
        &mut self,
        frames: &[f32],
        [s0, s1, s2]: [&[f32]; 3],
        [d0, d1, d2]: [(usize, usize); 3],
        (n, t, c, width, height): (usize, usize, usize, usize, usize),
        options: &RunOptions,
        take: impl FnOnce(&ort::value::DynValue) -> Result<(), String>,
    ) -> Result<(), String> {
        let e = |e: ort::Error| e.to_string();
        let v0 = TensorRef::from_array_view(([n, t, c, d0.0, d0.1], s0)).map_err(e)?;
        let v1 = TensorRef::from_array_view(([n, t, c, d1.0, d1.1], s1)).map_err(e)?;
        let v2 = TensorRef::from_array_view(([n, t, c, d2.0, d2.1], s2)).map_err(e)?;
        let input = TensorRef::from_array_view(([n, t, 3, height, width], frames)).map_err(e)?;
        let shapes: [(&str, &[usize]); 4] = [
            ("frames", &[n, t, 3, height, width]),
            ("feat0", &[n, t, c, d0.0, d0.1]),
            ("feat1", &[n, t, c, d1.0, d1.1]),
            ("feat2", &[n, t, c, d2.0, d2.1]),
        ];
        let outputs = self
            .fusion
            .session(&shapes)?
            .run_with_options(
                ort::inputs![
                    "frames" => input,
                    "feat0" => v0,
                    "feat1" => v1,
                    "feat2" => v2,
                ],
                options,
            )
            .map_err(e)?;
        take(&outputs[0])
    }
}

/// Stacks the features of a window's frames, in order, level by level into `into`; returns
/// each level's size.
pub(super) fn stack(
    feats: &[&Features],
    into: &mut [Vec<f32>; 3],
) -> Result<[(usize, usize); 3], String> {
    let first = feats.first().ok_or("no features to stack")?;
    for (lvl, stacked) in into.iter_mut().enumerate() {
        let dims = first.dims[lvl];
        if feats.iter().any(|f| f.dims[lvl] != dims) {
            return Err("the window's frames have features of different sizes".into());
        }
        stacked.clear();
        for f in feats {
            stacked.extend_from_slice(&f.levels[lvl]);
        }
    }
    Ok(first.dims)
}
