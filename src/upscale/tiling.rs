// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cutting frames into overlapping tiles so that any frame size runs in bounded memory.
//!
//! Each tile is run over the whole window of T frames with `overlap` pixels of context on every
//! side that has a neighbour; only its interior is kept, so the tiles meet without seams as long
//! as the overlap covers what the network looks at (its receptive field and flow reach). The
//! tile size follows from a memory budget unless it is given.

/// One tile: the input crop the model sees (`x, y, w, h`, context included) and the interior it
/// contributes to the output (`ix, iy, iw, ih`), in low-resolution pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
    pub ix: usize,
    pub iy: usize,
    pub iw: usize,
    pub ih: usize,
}

impl Tile {
    /// Whether this tile is the whole `width` x `height` frame (untiled).
    pub fn covers(&self, width: usize, height: usize) -> bool {
        (self.x, self.y, self.w, self.h) == (0, 0, width, height)
            && (self.ix, self.iy, self.iw, self.ih) == (0, 0, width, height)
    }
}

/// Tile origins and context are multiples of this: the network's feature pyramid halves the
/// picture twice (with ceil), so a crop that starts off this grid samples its coarse levels at
/// other positions than the whole frame does, and every pixel of the tile changes (measured on
/// Vid4 city: up to 41/255 with unaligned tiles, 1/255 aligned).
pub const ALIGN: usize = 8;

/// The smallest tile interior automatic tiling picks.
pub const MIN_TILE: usize = 32;
/// The smallest `tile-size` taken: two grid steps, 4 px at the network's coarsest level; below it
/// a tile is mostly context and the frame takes many times longer (tile-size=1 ran 15x slower
/// than the whole frame at 320x240).
pub const MIN_TILE_SIZE: usize = 16;
/// The most context a tile can use: twice the automatic overlap, which already keeps tiled output
/// within 1/255 of untiled; more only grows every tile towards the whole frame.
pub const MAX_OVERLAP: usize = 64;

/// Tile size and overlap as they will be used (0 stays 0: automatic), with a note for each value
/// that had to change so the element can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    pub tile: usize,
    pub overlap: usize,
    pub notes: Vec<String>,
}

/// Bounds `tile-size` and `tile-overlap` to what the network can use and the grid allows.
pub fn bounded(tile: usize, overlap: usize) -> Bounded {
    let mut notes = vec![];
    let tile = match tile {
        0 => 0,
        t if t < MIN_TILE_SIZE => {
            notes.push(format!(
                "tile-size={t} is below the smallest useful tile: using {MIN_TILE_SIZE}"
            ));
            MIN_TILE_SIZE
        }
        t => t,
    };
    let overlap = match overlap {
        0 => 0,
        o if o > MAX_OVERLAP => {
            notes.push(format!(
                "tile-overlap={o} is more context than the network uses: using {MAX_OVERLAP}"
            ));
            MAX_OVERLAP
        }
        o => o.div_ceil(ALIGN) * ALIGN,
    };
    Bounded {
        tile,
        overlap,
        notes,
    }
}

/// Boundaries of `count` near-equal spans covering `0..n`, inner ones on the [`ALIGN`] grid.
fn spans(n: usize, count: usize) -> Vec<(usize, usize)> {
    let cut = |i: usize| {
        if i == count {
            n
        } else {
            ((i * n / count + ALIGN / 2) / ALIGN * ALIGN).min(n)
        }
    };
    (0..count)
        .map(|i| (cut(i), cut(i + 1)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// The tiles of a `width` x `height` frame with interiors at most `tile` a side (plus what
/// alignment adds) and `overlap` (rounded up to [`ALIGN`]) pixels of context.
pub fn grid(width: usize, height: usize, tile: usize, overlap: usize) -> Vec<Tile> {
    let tile = tile.max(1);
    let overlap = overlap.div_ceil(ALIGN) * ALIGN;
    let xs = spans(width, width.div_ceil(tile));
    let ys = spans(height, height.div_ceil(tile));
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for &(y0, y1) in &ys {
        for &(x0, x1) in &xs {
            let (x, y) = (x0.saturating_sub(overlap), y0.saturating_sub(overlap));
            let (xe, ye) = ((x1 + overlap).min(width), (y1 + overlap).min(height));
            out.push(Tile {
                x,
                y,
                w: xe - x,
                h: ye - y,
                ix: x0,
                iy: y0,
                iw: x1 - x0,
                ih: y1 - y0,
            });
        }
    }
    out
}

/// The largest square interior (a multiple of 16, at least `min`) whose tile with context
/// costs at most `budget` by `cost(w, h)`; the whole frame if it fits. `None` if not even the
/// smallest tile fits.
pub fn auto_tile(
    width: usize,
    height: usize,
    overlap: usize,
    min: usize,
    budget: u64,
    cost: impl Fn(usize, usize) -> u64,
) -> Option<usize> {
    let whole = width.max(height);
    if cost(width, height) <= budget {
        return Some(whole);
    }
    let mut t = whole / 16 * 16;
    while t >= min.max(16) {
        let (w, h) = ((t + 2 * overlap).min(width), (t + 2 * overlap).min(height));
        if cost(w, h) <= budget {
            return Some(t);
        }
        t -= 16;
    }
    None
}

/// Copies the `tile` crop of a planar `[c, H, W]` frame into `out` (`[c, h, w]`).
pub fn crop(src: &[f32], width: usize, height: usize, tile: &Tile, out: &mut [f32]) {
    let channels = src.len() / (width * height);
    for c in 0..channels {
        let plane = &src[c * width * height..][..width * height];
        for row in 0..tile.h {
            let s = &plane[(tile.y + row) * width + tile.x..][..tile.w];
            out[(c * tile.h + row) * tile.w..][..tile.w].copy_from_slice(s);
        }
    }
}

/// Writes the interior of an upscaled tile (`[3, s*h, s*w]`) into the upscaled frame
/// (`[3, s*H, s*W]`).
pub fn paste(
    tile_out: &[f32],
    tile: &Tile,
    scale: usize,
    width: usize,
    height: usize,
    out: &mut [f32],
) {
    let (ow, oh) = (width * scale, height * scale);
    let (tw, th) = (tile.w * scale, tile.h * scale);
    let (dx, dy) = ((tile.ix - tile.x) * scale, (tile.iy - tile.y) * scale);
    let (iw, ih) = (tile.iw * scale, tile.ih * scale);
    for c in 0..3 {
        for row in 0..ih {
            let s = &tile_out[(c * th + dy + row) * tw + dx..][..iw];
            out[(c * oh + tile.iy * scale + row) * ow + tile.ix * scale..][..iw].copy_from_slice(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interiors_cover_the_frame_once() {
        for (w, h, t, ov) in [
            (23, 17, 8, 3),
            (100, 40, 100, 16),
            (64, 64, 16, 0),
            (7, 5, 2, 4),
        ] {
            let mut hits = vec![0u8; w * h];
            for tile in grid(w, h, t, ov) {
                assert!(tile.iw <= t + ALIGN && tile.ih <= t + ALIGN);
                assert!(tile.x % ALIGN == 0 && tile.y % ALIGN == 0, "{tile:?}");
                assert!(tile.x + tile.w <= w && tile.y + tile.h <= h);
                assert!(tile.x <= tile.ix && tile.ix + tile.iw <= tile.x + tile.w);
                for y in tile.iy..tile.iy + tile.ih {
                    for x in tile.ix..tile.ix + tile.iw {
                        hits[y * w + x] += 1;
                    }
                }
            }
            assert!(hits.iter().all(|&n| n == 1), "{w}x{h} tile {t}");
        }
    }

    #[test]
    fn tile_and_overlap_are_bounded_with_a_note() {
        assert_eq!(
            bounded(0, 0),
            Bounded {
                tile: 0,
                overlap: 0,
                notes: vec![]
            }
        );
        let b = bounded(1, 100_000);
        assert_eq!((b.tile, b.overlap), (MIN_TILE_SIZE, MAX_OVERLAP));
        assert_eq!(b.notes.len(), 2);
        assert!(b.notes[0].contains("tile-size=1") && b.notes[1].contains("tile-overlap=100000"));
        let b = bounded(100, 13);
        assert_eq!((b.tile, b.overlap, b.notes.len()), (100, 16, 0));
    }

    #[test]
    fn crop_then_paste_is_the_identity_at_scale_1() {
        let (w, h) = (13, 9);
        let src: Vec<f32> = (0..3 * w * h).map(|i| i as f32).collect();
        let mut out = vec![0.0; 3 * w * h];
        for tile in grid(w, h, 5, 2) {
            let mut buf = vec![0.0; 3 * tile.w * tile.h];
            crop(&src, w, h, &tile, &mut buf);
            paste(&buf, &tile, 1, w, h, &mut out);
        }
        assert_eq!(src, out);
    }

    #[test]
    fn auto_tile_fits_the_budget() {
        let cost = |w: usize, h: usize| (w * h) as u64;
        assert_eq!(auto_tile(100, 50, 8, 32, 10_000, cost), Some(100));
        let t = auto_tile(1000, 500, 8, 32, 10_000, cost).unwrap();
        assert!(
            cost(t + 16, t + 16) <= 10_000 && t % 16 == 0 && t >= 64,
            "{t}"
        );
        assert_eq!(auto_tile(1000, 500, 8, 32, 100, cost), None);
    }
}
