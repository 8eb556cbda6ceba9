//! Tile geometry: how the output maps of a call are cut into `m × m` tiles, and how tiles
//! are grouped into blocks, the columns of one round of GEMMs.
//!
//! Tiles are counted in tile rows: row `r` is tile row `r mod th` of image `r div th`, and
//! holds `tw` tiles. A block is a run of whole tile rows (across images, so that a 7×7 map's
//! four tiles per image still make GEMMs of useful width), at most [`BLOCK_TILES`] tiles
//! unless one row alone is wider. The last tile of a row or column may reach past the map:
//! its input is read as zeros beyond the padding and its outputs there are dropped.

use std::ops::Range;

use super::Tile;
use crate::im2col::Conv2d;

/// The most tiles in one block: the GEMMs' `n` (for `V`, `c × n`, and `M`, `out × n`, per
/// Winograd point). Blocks of 28 to 392 tiles measured within noise of each other on
/// GoogLeNet's 64→192 @56 and ResNet-50's 128→128 @28 and 256→256 @14 (batch 8, one thread;
/// see `examples/winograd_bench.rs`): wider GEMMs and more cache misses on `M` balance.
pub(super) const BLOCK_TILES: usize = 192;

/// The tiling of one call: `n` images of the output map of a conv.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    /// Outputs per tile side.
    pub m: usize,
    /// Inputs per tile side, `m + 2`; `α²` Winograd points.
    pub alpha: usize,
    /// Tile rows per image.
    pub th: usize,
    /// Tiles per tile row.
    pub tw: usize,
    /// Tile rows of all images.
    pub rows: usize,
    /// Tile rows per block.
    pub block_rows: usize,
}

impl Plan {
    pub fn new(g: &Conv2d, tile: Tile, n: usize) -> Plan {
        let m = tile.m();
        let (th, tw) = (g.ho().div_ceil(m), g.wo().div_ceil(m));
        let rows = n * th;
        Plan {
            m,
            alpha: m + 2,
            th,
            tw,
            rows,
            block_rows: (BLOCK_TILES / tw).clamp(1, rows.max(1)),
        }
    }

    /// Winograd points, `α²`.
    pub fn points(&self) -> usize {
        self.alpha * self.alpha
    }

    /// Tiles of the widest block: the row length of `V` and `M`.
    pub fn tb(&self) -> usize {
        self.block_rows * self.tw
    }

    /// The blocks, as ranges of tile rows.
    pub fn blocks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.rows)
            .step_by(self.block_rows)
            .map(|r| r..(r + self.block_rows).min(self.rows))
    }

    /// The images a block of tile rows touches.
    pub fn images(&self, rows: &Range<usize>) -> Range<usize> {
        rows.start / self.th..(rows.end - 1) / self.th + 1
    }

    /// Floats from one Winograd point's row of a channel's `V` or `M` to the next: the widest
    /// block and one vector of slack, so that the lane kernels always load and store whole
    /// vectors (the lanes past a row's last tile land in the next row, written after, or in
    /// the slack).
    pub fn stride(&self) -> usize {
        self.tb() + super::transform::LANES
    }

    /// Floats of the transformed weights, `α² × rows × cols`.
    pub fn u_len(&self, g: &Conv2d) -> usize {
        self.points() * g.out * g.c
    }

    /// Floats of one block's transformed tiles of `channels` channels.
    pub fn block_len(&self, channels: usize) -> usize {
        self.points() * channels * self.stride()
    }

    /// Lanes of a tile row rounded up to whole vectors.
    pub fn tw_lanes(&self) -> usize {
        self.tw.next_multiple_of(super::transform::LANES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_tile_row_once() {
        for (h, n) in [(7, 8), (56, 1), (28, 3), (9, 2)] {
            let g = Conv2d::square(4, h, h, 4, 3, 1, 1);
            for tile in [Tile::F2, Tile::F4] {
                let p = Plan::new(&g, tile, n);
                assert!(p.th * p.m >= g.ho() && (p.th - 1) * p.m < g.ho());
                let rows: Vec<usize> = p.blocks().flatten().collect();
                assert_eq!(rows, (0..n * p.th).collect::<Vec<_>>());
                assert!(p.blocks().all(|b| b.len() * p.tw <= p.tb()));
            }
        }
    }
}
