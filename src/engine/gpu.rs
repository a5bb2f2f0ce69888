// SPDX-License-Identifier: MIT OR Apache-2.0

//! Is there a usable NVIDIA GPU? Asked of the CUDA driver through cudarc, which would panic if
//! libcuda were absent, so its presence is checked first.

/// `Ok(device count)` or why CUDA cannot be used.
#[cfg(feature = "cuda")]
pub fn cuda_devices() -> Result<usize, String> {
    // SAFETY: only probes whether the shared library can be opened.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("the NVIDIA driver library (libcuda.so) is not installed".into());
    }
    cudarc::driver::result::init()
        .map_err(|e| format!("the CUDA driver failed to initialise: {e}"))?;
    let n = cudarc::driver::result::device::get_count()
        .map_err(|e| format!("counting CUDA devices failed: {e}"))?;
    if n <= 0 {
        return Err("the CUDA driver reports no GPU".into());
    }
    Ok(n as usize)
}

#[cfg(not(feature = "cuda"))]
pub fn cuda_devices() -> Result<usize, String> {
    Err("this build of the plugin has the `cuda` feature off".into())
}
