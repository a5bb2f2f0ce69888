// SPDX-License-Identifier: MIT OR Apache-2.0

//! Upscaling a stream of frames without GStreamer: the temporal window ([`window`]), the
//! bookkeeping of a run of frames ([`runs`]) and where it breaks ([`scenecut`]), tiles for any
//! frame size ([`tiling`]), what an inference may cost ([`memory`]), and [`upscaler`], which
//! ties them to the [`Engine`](crate::engine::Engine): one call per batch.

pub mod memory;
pub mod runs;
pub mod scenecut;
pub mod tiling;
pub mod upscaler;
pub mod window;
