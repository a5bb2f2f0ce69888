// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cross-stream batching: engines that share sessions hand their windows to one batching
//! thread, which runs the windows of every stream that arrive within a bounded wait as one
//! inference (DeepStream's `nvstreammux` + `nvinfer` on one engine, in one process).
//!
//! Each stream submits one job and waits for its own result, so its order and timestamps are
//! its own; a stream that is stopped (a flush, a teardown) stops waiting at once and its
//! windows' results are dropped, without touching the other streams' run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ort::session::RunOptions;
use ort::value::TensorRef;

use super::{Sessions, copy_upscaled};

/// How windows of several streams are batched: at most `max` windows an inference, waiting at
/// most `wait` after the first one arrives for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossBatch {
    pub max: usize,
    pub wait: Duration,
}

/// The three pyramid levels' stacked features `[n, T, C, h_l, w_l]`, and each level's size.
pub(super) type Stacked = ([Vec<f32>; 3], [(usize, usize); 3]);

/// One stream's windows: `[n, T, 3, h, w]` frames and, for the extractor/fusion pair, the
/// windows' stacked features.
pub(super) struct Job {
    pub frames: Vec<f32>,
    pub features: Option<Stacked>,
    pub n: usize,
    pub width: usize,
    pub height: usize,
    pub batch: CrossBatch,
    pub submitted: Instant,
    pub reply: mpsc::Sender<Result<Vec<f32>, String>>,
}

impl Job {
    /// Windows of the same size through the same graph can go into one inference.
    fn fits(&self, other: &Job) -> bool {
        self.width == other.width
            && self.height == other.height
            && self.features.as_ref().map(|f| f.1) == other.features.as_ref().map(|f| f.1)
    }
}

/// What the model's graphs need to stack a group.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub window: usize,
    pub scale: usize,
    pub channels: usize,
}

/// Counters of the batching thread (for `stats`).
#[derive(Debug, Default)]
pub struct BatchCounters {
    /// Inferences the batching thread ran.
    pub inferences: AtomicU64,
    /// Windows in them.
    pub windows: AtomicU64,
    /// Inferences that carried windows of more than one stream.
    pub shared: AtomicU64,
}

/// The batching thread of one set of shared sessions, started at its first job; it ends when
/// the last engine using it is dropped.
pub(super) struct Room {
    sessions: Weak<Mutex<Sessions>>,
    shape: Shape,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    pub counters: Arc<BatchCounters>,
}

impl Room {
    pub fn new(sessions: Weak<Mutex<Sessions>>, shape: Shape) -> Self {
        Self {
            sessions,
            shape,
            tx: Mutex::new(None),
            counters: Arc::default(),
        }
    }

    pub fn submit(&self, job: Job) -> Result<(), String> {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.is_none() {
            let (send, recv) = mpsc::channel();
            let (sessions, shape, counters) =
                (self.sessions.clone(), self.shape, self.counters.clone());
            let options = RunOptions::new().map_err(|e| format!("onnxruntime run options: {e}"))?;
            std::thread::Builder::new()
                .name("mstgansr-batch".into())
                .spawn(move || serve(&recv, &sessions, shape, &counters, &options))
                .map_err(|e| format!("cannot start the batching thread: {e}"))?;
            *tx = Some(send);
        }
        let send = tx.as_ref().expect("started above");
        send.send(job)
            .map_err(|_| "the batching thread has ended".to_string())
    }
}

/// The batching thread: the first job opens a group, jobs that fit join it until it holds
/// `max` windows or `wait` has passed since the first one was submitted; then it runs.
fn serve(
    rx: &mpsc::Receiver<Job>,
    sessions: &Weak<Mutex<Sessions>>,
    shape: Shape,
    counters: &BatchCounters,
    options: &RunOptions,
) {
    let mut later: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match later.pop_front() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let deadline = first.submitted + first.batch.wait;
        let max = first.batch.max.max(1);
        let mut group = vec![first];
        let mut n = group[0].n;
        // jobs that waited behind another group's run may fit this one
        let mut i = 0;
        while i < later.len() && n < max {
            if later[i].fits(&group[0]) && n + later[i].n <= max {
                let j = later.remove(i).expect("index checked");
                n += j.n;
                group.push(j);
            } else {
                i += 1;
            }
        }
        while n < max {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) if j.fits(&group[0]) && n + j.n <= max => {
                    n += j.n;
                    group.push(j);
                }
                Ok(j) => later.push_back(j),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let result = match sessions.upgrade() {
            Some(s) => run_group(&s, shape, &group, n, options),
            None => Err("the model's sessions were freed".into()),
        };
        counters.inferences.fetch_add(1, Ordering::Relaxed);
        counters.windows.fetch_add(n as u64, Ordering::Relaxed);
        if group.len() > 1 {
            counters.shared.fetch_add(1, Ordering::Relaxed);
        }
        let mut at = 0;
        for job in group {
            let len = job.n * 3 * job.width * job.height * shape.scale * shape.scale;
            // a stream that stopped waiting has dropped its receiver: nothing to do
            let _ = job.reply.send(match &result {
                Ok(out) => Ok(out[at..at + len].to_vec()),
                Err(e) => Err(e.clone()),
            });
            at += len;
        }
    }
}

fn run_group(
    sessions: &Mutex<Sessions>,
    shape: Shape,
    group: &[Job],
    n: usize,
    options: &RunOptions,
) -> Result<Vec<f32>, String> {
    let (w, h, t, s) = (group[0].width, group[0].height, shape.window, shape.scale);
    let joined: Vec<f32>;
    let frames = if group.len() == 1 {
        &group[0].frames
    } else {
        joined = group
            .iter()
            .flat_map(|j| j.frames.iter().copied())
            .collect();
        &joined
    };
    let mut out = vec![0f32; n * 3 * w * h * s * s];
    let mut guard = sessions.lock().unwrap_or_else(|e| e.into_inner());
    let e = |e: ort::Error| e.to_string();
    match &group[0].features {
        None => {
            let input =
                TensorRef::from_array_view(([n, t, 3, h, w], frames.as_slice())).map_err(e)?;
            let outputs = guard
                .whole
                .session(&[("frames", &[n, t, 3, h, w])])?
                .run_with_options(ort::inputs!["frames" => input], options)
                .map_err(e)?;
            copy_upscaled(&outputs[0], [n, h * s, w * s], &mut out)?;
        }
        Some((_, dims)) => {
            let stacked: [Vec<f32>; 3] = std::array::from_fn(|l| {
                group
                    .iter()
                    .flat_map(|j| j.features.as_ref().map_or(&[][..], |f| &f.0[l]))
                    .copied()
                    .collect()
            });
            let split = guard
                .split
                .as_mut()
                .ok_or("the model has no extractor/fusion pair loaded")?;
            split.fuse_stacked(
                frames,
                [&stacked[0], &stacked[1], &stacked[2]],
                *dims,
                (n, t, shape.channels, w, h),
                options,
                |v| copy_upscaled(v, [n, h * s, w * s], &mut out),
            )?;
        }
    }
    Ok(out)
}
