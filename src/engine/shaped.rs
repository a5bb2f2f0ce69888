// SPDX-License-Identifier: MIT OR Apache-2.0

//! A graph whose sessions are built for one input size each, for OpenVINO. With free
//! dimensions, onnxruntime keeps the flow warp's shape arithmetic on its own CPU kernels, which
//! cuts OpenVINO's part of the graph in pieces that fail to run ("Output names mismatch");
//! with every free dimension fixed, that arithmetic folds into constants and OpenVINO compiles
//! the whole graph.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::ValueType;

use super::config::{EngineConfig, Provider};
use super::providers::session_builder;

/// Sizes kept compiled: a stream has one, tiling adds its edge tiles, a short final batch one.
const KEEP: usize = 6;

/// One graph: a session for any input size, or sessions per size.
pub(super) enum Graph {
    Dynamic(Session),
    Shaped(Box<Shaped>),
}

pub(super) struct Shaped {
    path: PathBuf,
    cfg: EngineConfig,
    spinning: bool,
    /// The graph's distinct dimension symbols, in the order sizes are keyed by.
    symbols: Vec<String>,
    /// Each input's name and, per dimension, the index of its symbol (`None` where fixed).
    inputs: Vec<(String, Vec<Option<usize>>)>,
    /// Compiled sessions by the value of each symbol.
    built: Vec<(Vec<i64>, Session)>,
}

impl Graph {
    /// `generic` was loaded from `path`; with `provider` OpenVINO, sessions per size are built
    /// on demand.
    pub(super) fn new(
        generic: Session,
        path: &Path,
        cfg: &EngineConfig,
        provider: Provider,
        spinning: bool,
    ) -> Self {
        if !provider.per_shape() {
            return Graph::Dynamic(generic);
        }
        let mut symbols: Vec<String> = Vec::new();
        let inputs = generic
            .inputs()
            .iter()
            .map(|i| {
                let slots = match i.dtype() {
                    ValueType::Tensor {
                        dimension_symbols, ..
                    } => dimension_symbols
                        .iter()
                        .map(|sym| {
                            (!sym.is_empty()).then(|| {
                                symbols.iter().position(|s| s == sym).unwrap_or_else(|| {
                                    symbols.push(sym.clone());
                                    symbols.len() - 1
                                })
                            })
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                (i.name().to_string(), slots)
            })
            .collect();
        // `generic` (on the CPU provider, for the contract checks) is dropped here
        Graph::Shaped(Box::new(Shaped {
            path: path.to_path_buf(),
            cfg: cfg.clone(),
            spinning,
            symbols,
            inputs,
            built: Vec::new(),
        }))
    }

    /// The session for inputs of these shapes (input name, shape).
    pub(super) fn session(&mut self, shapes: &[(&str, &[usize])]) -> Result<&mut Session, String> {
        match self {
            Graph::Dynamic(s) => Ok(s),
            Graph::Shaped(s) => s.session(shapes),
        }
    }
}

impl Shaped {
    fn session(&mut self, shapes: &[(&str, &[usize])]) -> Result<&mut Session, String> {
        // per frame: the symbols' values, checked for agreement between inputs
        let mut values: Vec<Option<i64>> = vec![None; self.symbols.len()];
        for (name, slots) in &self.inputs {
            let Some((_, shape)) = shapes.iter().find(|(n, _)| n == name) else {
                return Err(format!("no shape given for input `{name}`"));
            };
            for (slot, &d) in slots.iter().zip(shape.iter()) {
                let Some(k) = *slot else { continue };
                match values[k] {
                    Some(v) if v != d as i64 => {
                        return Err(format!(
                            "dimension `{}` is {v} in one input and {d} in another",
                            self.symbols[k]
                        ));
                    }
                    Some(_) => {}
                    None => values[k] = Some(d as i64),
                }
            }
        }
        let Some(fixed) = values.into_iter().collect::<Option<Vec<i64>>>() else {
            return Err("a dimension symbol appears in no given shape".into());
        };
        if let Some(i) = self.built.iter().position(|(k, _)| *k == fixed) {
            return Ok(&mut self.built[i].1);
        }
        let (mut b, _, _) =
            session_builder(&self.cfg, Provider::OpenVino).map_err(|e| e.to_string())?;
        b = b
            .with_intra_op_spinning(self.spinning)
            .map_err(|e| e.to_string())?;
        for (sym, v) in self.symbols.iter().zip(&fixed) {
            b = b
                .with_dimension_override(sym, *v)
                .map_err(|e| e.to_string())?;
        }
        let session = b.commit_from_file(&self.path).map_err(|e| {
            format!(
                "{} could not be compiled by OpenVINO for {:?} = {fixed:?}: {e}",
                self.path.display(),
                self.symbols
            )
        })?;
        if self.built.len() >= KEEP {
            self.built.remove(0);
        }
        self.built.push((fixed, session));
        Ok(&mut self.built.last_mut().expect("just pushed").1)
    }
}
