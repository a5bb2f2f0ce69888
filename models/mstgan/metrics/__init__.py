"""Quality metrics (PSNR/SSIM on Y, tOF)."""
