//! conv_algo: chooses each conv's algorithm, im2col + GEMM or Winograd (F(4×4, 3×3) or
//! F(2×2, 3×3)) for a 3×3 stride-1 conv, by a cost model, unless `--conv-algo` pins it
//! ([`Graph::conv_algo`]). It rewrites no node, only the conv's [`Algo`], which codegen
//! prints as the runtime call and whose scratch goes into the workspace's `col`; skipped,
//! every conv stays on im2col. The interpreter ignores the choice: it is the oracle the
//! generated code is compared with.
//!
//! The model is per layer and per image batch (the network's `train { batch }`, else 8):
//! im2col costs its multiply-adds; Winograd costs its GEMMs' multiply-adds (`α²` per tile
//! and channel pair), the transformed weights (`α²·out·c` floats, written into the GEMMs'
//! panels and read once per call whatever the batch), and the tiles transformed in and out
//! (`α²·(c + out)` floats per tile). The rates are calibrated on
//! `runtime/examples/winograd_bench.rs`, one thread of the development machine (Zen 4):
//! at batch 8 F4 ran GoogLeNet's 64→192 @56 and 96→128 @28 1.4–1.6× faster than im2col,
//! broke even on 14×14 maps, and lost on 7×7 ones (192→384: 7.4 against 6.6 ms; ResNet-50's
//! 512→512: 22 against 21), where 36/9 = 4 times the weights are transformed for 4 tiles
//! per image; at batch 1 it lost from 14×14 down (the weights' cost no longer shared).

use netc_dsl::Diagnostic;
use netc_runtime::conv::winograd::{self, Tile};
use netc_runtime::conv::Conv2d;

use crate::graph::Graph;
use crate::ops::{Algo, Op};
use crate::passes::Changed;

/// What `--conv-algo` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pin {
    /// The cost model chooses.
    #[default]
    Auto,
    /// im2col everywhere.
    Im2col,
    /// Winograd F4 wherever it applies (3×3, stride 1, no dilation, one group).
    Winograd,
}

/// The batch the cost model assumes when the network gives none (`netc bench`'s default).
pub const DEFAULT_BATCH: usize = 8;

/// Multiply-adds per second of the GEMMs, both algorithms (~90 GFLOP/s on one core).
const MACS_PER_S: f64 = 45e9;
/// Seconds per transformed-weight float: the weight transform's write into the GEMMs'
/// panels and their reading (the 7×7 layers at batch 1, where it is nearly all of the time).
/// Calibrated when the GEMMs still packed the weights themselves; since they read the
/// transform's panels, `winograd_bench --f2 8` still has 512→512 @7 level or slower than
/// im2col per training step (57 ms against 57–60), so the rate stands.
const WEIGHT_S: f64 = 2e-9;
/// Seconds per tile float transformed, in or out (the 56×56 layers at batch 8).
const TILE_S: f64 = 1e-9;

pub fn run(g: &mut Graph) -> Result<Changed, Diagnostic> {
    let batch = g.train.batch.map_or(DEFAULT_BATCH, |b| b as usize).max(1);
    let pin = g.conv_algo;
    let mut changed = false;
    for n in g.nodes() {
        let Some(&x) = g.inputs_of(n).first() else {
            continue;
        };
        let x = g.node(x).shape.clone();
        let grouped = g.group_of(n).is_some();
        let Op::Conv(c) = &mut g.g[n].op else {
            continue;
        };
        let algo = if grouped {
            Algo::Im2col
        } else {
            choose(&c.geometry(&x), batch, pin)
        };
        changed |= algo != c.algo;
        c.algo = algo;
    }
    Ok(Changed(changed))
}

/// The algorithm for a conv of geometry `geo` run on `batch` images.
pub fn choose(geo: &Conv2d, batch: usize, pin: Pin) -> Algo {
    if !winograd::applies(geo) {
        return Algo::Im2col;
    }
    match pin {
        Pin::Im2col => Algo::Im2col,
        Pin::Winograd => Algo::Winograd(Tile::F4),
        Pin::Auto => [
            Algo::Im2col,
            Algo::Winograd(Tile::F4),
            Algo::Winograd(Tile::F2),
        ]
        .into_iter()
        .min_by(|a, b| seconds(geo, batch, *a).total_cmp(&seconds(geo, batch, *b)))
        .unwrap_or(Algo::Im2col),
    }
}

/// The model's estimate of one forward pass of `geo` on `batch` images with `algo`.
pub fn seconds(geo: &Conv2d, batch: usize, algo: Algo) -> f64 {
    let (ho, wo) = (geo.ho() as f64, geo.wo() as f64);
    let (c, out, n) = (geo.c as f64, geo.out as f64, batch as f64);
    match algo {
        Algo::Im2col => n * out * c * (geo.kh * geo.kw) as f64 * ho * wo / MACS_PER_S,
        Algo::Winograd(tile) => {
            let m = tile.m() as f64;
            let points = (m + 2.0) * (m + 2.0);
            let tiles = n * (ho / m).ceil() * (wo / m).ceil();
            points * out * c * tiles / MACS_PER_S
                + points * out * c * WEIGHT_S
                + points * (c + out) * tiles * TILE_S
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(c: usize, hw: usize, out: usize, k: usize, s: usize) -> Conv2d {
        Conv2d::square(c, hw, hw, out, k, s, k / 2)
    }

    /// GoogLeNet's 3×3 convs on 28×28 and larger take Winograd; 1×1, strided, and the small
    /// maps at small batches stay on im2col; a pin overrides the model where Winograd
    /// applies, and only there.
    #[test]
    fn the_model_chooses_winograd_where_it_measured_faster() {
        let f4 = Algo::Winograd(Tile::F4);
        assert_eq!(choose(&conv(96, 28, 128, 3, 1), 8, Pin::Auto), f4);
        assert_eq!(choose(&conv(64, 56, 192, 3, 1), 8, Pin::Auto), f4);
        assert_eq!(choose(&conv(64, 56, 192, 3, 1), 1, Pin::Auto), f4);
        assert_eq!(choose(&conv(192, 28, 64, 1, 1), 8, Pin::Auto), Algo::Im2col);
        assert_eq!(choose(&conv(64, 56, 128, 3, 2), 8, Pin::Auto), Algo::Im2col);
        assert_eq!(choose(&conv(512, 7, 512, 3, 1), 8, Pin::Auto), Algo::Im2col);
        assert_eq!(choose(&conv(512, 7, 512, 3, 1), 1, Pin::Auto), Algo::Im2col);
        assert_eq!(choose(&conv(192, 7, 384, 3, 1), 8, Pin::Auto), Algo::Im2col);
        assert_eq!(choose(&conv(96, 14, 208, 3, 1), 1, Pin::Auto), Algo::Im2col);
        assert_eq!(choose(&conv(512, 7, 512, 3, 1), 1, Pin::Winograd), f4);
        assert_eq!(
            choose(&conv(64, 56, 128, 3, 2), 8, Pin::Winograd),
            Algo::Im2col
        );
        assert_eq!(
            choose(&conv(96, 28, 128, 3, 1), 8, Pin::Im2col),
            Algo::Im2col
        );
    }
}
