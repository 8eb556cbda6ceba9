//! Shape inference: the output shape of every op from its input shapes, with the window
//! rule of docs/language.md (floor or PyTorch's ceil mode, padding, dilation).

use super::{pair_str, product, Op, OpError, Pair, MAX_ELEMENTS};
use crate::graph::{shape_str, Shape};

/// One output size of a window op: `floor((d + 2p - dil(k-1) - 1) / s) + 1`, or with `ceil`
/// PyTorch's ceil mode, which drops a last window that would start past the input and its
/// left padding. `None` when the window does not fit.
pub fn window_out(d: usize, k: usize, s: usize, p: usize, dil: usize, ceil: bool) -> Option<usize> {
    // Sizes are below 2^41 (MAX_ELEMENTS, MAX_DIM), so i128 holds every step exactly.
    let (d, k, s, p, dil) = (d as i128, k as i128, s as i128, p as i128, dil as i128);
    let room = d + 2 * p - dil * (k - 1) - 1;
    let mut o = if ceil {
        room.div_euclid(s) + i128::from(room.rem_euclid(s) != 0) + 1
    } else {
        room.div_euclid(s) + 1
    };
    if ceil && (o - 1) * s >= d + p {
        o -= 1;
    }
    // PyTorch also needs the window to fit the padded input in floor mode.
    if o < 1 || (!ceil && room < 0) {
        return None;
    }
    usize::try_from(o).ok()
}

/// Rows (or columns) of the padded input that a floor-mode window never reaches.
pub fn dropped(d: usize, k: usize, s: usize, p: usize, dil: usize) -> usize {
    (d + 2 * p).saturating_sub(dil * (k - 1) + 1) % s
}

/// Rows (or columns) of the input itself, not its padding, that a floor-mode window never
/// reaches, when the windows read every other row: the [`dropped`] rows less the `p` rows of
/// padding at the end. Zero when the windows skip rows anyway, by design (a window narrower
/// than its stride, as in a 1×1/2 projection, or a dilation sharing a factor with the
/// stride): losing the last row is then no different from losing the others. Window
/// positions `o·s + j·dil` (j < k) reach every residue mod s exactly when gcd(dil, s) = 1
/// and k ≥ s.
pub fn unread_input(d: usize, k: usize, s: usize, p: usize, dil: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    if k < s || gcd(dil, s) != 1 {
        return 0;
    }
    dropped(d, k, s, p, dil).saturating_sub(p)
}

fn expect_image(op: &str, x: &Shape) -> Result<(), OpError> {
    if x.len() == 3 {
        return Ok(());
    }
    let mut e = OpError::new(format!(
        "`{op}` expects an image [C, H, W], found {}",
        shape_str(x)
    ));
    if x.len() == 1 {
        e = e.help(format!(
            "`{op}` works on images; this value is a feature vector"
        ));
    }
    Err(e)
}

fn checked_shape(shape: Shape) -> Result<Shape, OpError> {
    let n = product(&shape);
    if n > MAX_ELEMENTS {
        return Err(OpError::new(format!(
            "output {} has {n} elements per sample, more than netc handles ({MAX_ELEMENTS})",
            shape_str(&shape)
        )));
    }
    Ok(shape)
}

/// A window's geometry, per dimension.
struct Window {
    k: Pair,
    s: Pair,
    p: Pair,
    dil: Pair,
    ceil: bool,
}

fn window_shape(op: &str, x: &Shape, out_c: usize, w: Window) -> Result<Shape, OpError> {
    let Window { k, s, p, dil, ceil } = w;
    let mut out = vec![out_c, 0, 0];
    for i in 0..2 {
        let span = dil[i] * (k[i] - 1) + 1;
        out[i + 1] = window_out(x[i + 1], k[i], s[i], p[i], dil[i], ceil).ok_or_else(|| {
            OpError::new(format!(
                "`{op}`'s {} window does not fit its input {} (padding {})",
                if dil[i] > 1 {
                    format!("{}-wide (dilated)", span)
                } else {
                    format!("{}×{}", k[0], k[1])
                },
                shape_str(x),
                pair_str(p)
            ))
            .at("k")
            .help("use a smaller kernel or more padding, or remove a downsampling layer before it")
        })?;
    }
    checked_shape(out)
}

/// The output shape of `op` applied to inputs of shapes `ins`.
pub fn infer(op: &Op, ins: &[&Shape]) -> Result<Shape, OpError> {
    let x = ins[0];
    match op {
        Op::Input(_) => Ok(x.clone()),
        Op::Conv(c) => {
            expect_image("conv", x)?;
            if !x[0].is_multiple_of(c.groups) || c.out % c.groups != 0 {
                return Err(OpError::new(format!(
                    "`groups={}` must divide both the input channels ({}) and `out` ({})",
                    c.groups, x[0], c.out
                ))
                .at("groups"));
            }
            weights_fit(product(&[c.out, x[0] / c.groups, c.k[0], c.k[1]]))?;
            window_shape(
                "conv",
                x,
                c.out,
                Window {
                    k: c.k,
                    s: c.s,
                    p: c.p,
                    dil: c.dil,
                    ceil: false,
                },
            )
        }
        Op::ConvT(c) => {
            let name = op.name();
            expect_image(name, x)?;
            if !x[0].is_multiple_of(c.groups) || c.out % c.groups != 0 {
                return Err(OpError::new(format!(
                    "`groups={}` must divide both the input channels ({}) and `out` ({})",
                    c.groups, x[0], c.out
                ))
                .at("groups"));
            }
            for i in 0..2 {
                // docs/language.md: 0 <= op < s (PyTorch also allows op < dil; netc does not).
                if c.op[i] >= c.s[i] {
                    return Err(OpError::new(format!(
                        "output padding `op={}` must be smaller than the stride ({})",
                        pair_str(c.op),
                        pair_str(c.s),
                    ))
                    .at("op"));
                }
            }
            weights_fit(product(&[x[0], c.out / c.groups, c.k[0], c.k[1]]))?;
            let mut out = vec![c.out, 0, 0];
            for i in 0..2 {
                // (H-1)s - 2p + dil(k-1) + op + 1
                let full = (x[i + 1] as u128 - 1) * c.s[i] as u128
                    + (c.dil[i] * (c.k[i] - 1)) as u128
                    + c.op[i] as u128
                    + 1;
                let crop = 2 * c.p[i] as u128;
                if full <= crop {
                    return Err(OpError::new(format!(
                        "`{name}` on {} with k={} s={} p={} has no output: padding crops everything",
                        shape_str(x),
                        pair_str(c.k),
                        pair_str(c.s),
                        pair_str(c.p)
                    ))
                    .at("p"));
                }
                out[i + 1] = usize::try_from(full - crop).unwrap_or(usize::MAX);
            }
            checked_shape(out)
        }
        Op::MaxPool(pl) | Op::AvgPool(pl) => {
            let name = op.name();
            expect_image(name, x)?;
            for i in 0..2 {
                if 2 * pl.p[i] > pl.k[i] {
                    return Err(OpError::new(format!(
                        "`{name}`'s padding {} is more than half its window {}",
                        pair_str(pl.p),
                        pair_str(pl.k)
                    ))
                    .at("p")
                    .help(
                        "PyTorch requires pad ≤ k/2: a window made only of padding has no value",
                    ));
                }
            }
            window_shape(
                name,
                x,
                x[0],
                Window {
                    k: pl.k,
                    s: pl.s,
                    p: pl.p,
                    dil: [1, 1],
                    ceil: pl.ceil,
                },
            )
        }
        Op::GlobalAvgPool => {
            expect_image("global_avgpool", x)?;
            Ok(vec![x[0], 1, 1])
        }
        Op::Lrn { .. } => {
            expect_image("lrn", x)?;
            Ok(x.clone())
        }
        Op::BatchNorm { .. } => {
            if x.len() != 3 && x.len() != 1 {
                return Err(OpError::new(format!(
                    "`batchnorm` expects [C, H, W] or [F], found {}",
                    shape_str(x)
                )));
            }
            Ok(x.clone())
        }
        Op::Relu
        | Op::Sigmoid
        | Op::Tanh
        | Op::LeakyRelu { .. }
        | Op::Dropout { .. }
        | Op::Softmax => Ok(x.clone()),
        Op::Flatten => {
            let n: usize = x.iter().product();
            Ok(vec![n])
        }
        Op::Linear { out, .. } => {
            if x.len() != 1 {
                let mut e = OpError::new(format!(
                    "`linear` expects a feature vector [F], found {}",
                    shape_str(x)
                ));
                if x.len() == 3 {
                    e = e.help("flatten it first: `-> flatten -> linear(..)`");
                }
                return Err(e);
            }
            weights_fit(product(&[x[0], *out]))?;
            Ok(vec![*out])
        }
        Op::Concat => {
            let rank = x.len();
            for (i, y) in ins.iter().enumerate().skip(1) {
                let same = y.len() == rank && (rank != 3 || y[1..] == x[1..]);
                if !same {
                    return Err(OpError::new(format!(
                        "`concat` joins along channels, so every input needs the same H and W; input 1 is {} but input {} is {}",
                        shape_str(x),
                        i + 1,
                        shape_str(y)
                    ))
                    .help("check the strides and padding of the branches"));
                }
            }
            let mut out = x.clone();
            out[0] = ins.iter().map(|s| s[0]).sum();
            checked_shape(out)
        }
        Op::Add => {
            for (i, y) in ins.iter().enumerate().skip(1) {
                if *y != x {
                    return Err(OpError::new(format!(
                        "`add` needs inputs of one shape; input 1 is {} but input {} is {}",
                        shape_str(x),
                        i + 1,
                        shape_str(y)
                    ))
                    .help("project the shortcut with a 1×1 conv of matching channels and stride"));
                }
            }
            Ok(x.clone())
        }
    }
}

fn weights_fit(n: u128) -> Result<(), OpError> {
    if n > MAX_ELEMENTS {
        Err(OpError::new(format!(
            "this layer would have {n} weights, more than netc handles ({MAX_ELEMENTS})"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_out_matches_pytorch_floor_and_ceil() {
        // GoogLeNet's pools: 112 -> 56 with k=3 s=2 p=1.
        assert_eq!(window_out(112, 3, 2, 1, 1, false), Some(56));
        // Caffe-style ceil pools: 112 -> 56 with p=0.
        assert_eq!(window_out(112, 3, 2, 0, 1, true), Some(56));
        // Ceil mode drops a last window starting in the right padding: d=4 k=2 s=2 p=1
        // gives ceil(4/2)+1 = 3 windows starting at -1, 1, 3; all start inside d+p = 5.
        assert_eq!(window_out(4, 2, 2, 1, 1, true), Some(3));
        // d=5 k=2 s=2 p=1: ceil(5/2)+1 = 4 windows, starting at 0, 2, 4, 6 of the padded
        // input; the last starts at 6 >= d + p = 6, past the input, and is dropped.
        assert_eq!(window_out(5, 2, 2, 1, 1, true), Some(3));
        // d=6 k=3 s=3 p=1: ceil(5/3)+1 = 3, third starts at 6-1=5 < 7 -> 3.
        assert_eq!(window_out(6, 3, 3, 1, 1, true), Some(3));
        // d=5 k=3 s=2 p=1: floor 3, ceil 3.
        assert_eq!(window_out(5, 3, 2, 1, 1, true), Some(3));
        // d=2 k=2 s=2 p=1: ceil(2/2)+1 = 2; second starts at 2 >= d+p=3? no, keep 2.
        assert_eq!(window_out(2, 2, 2, 1, 1, true), Some(2));
        // d=1 k=1 s=2 p=0 ceil: room 0 -> 1 window.
        assert_eq!(window_out(1, 1, 2, 0, 1, true), Some(1));
        // The dropping rule: d=3 k=1 s=2 p=0... use d=2,k=1,s=2: ceil((2-1)/2)+1 = 2, the
        // second starts at 2 >= d+p = 2 -> dropped.
        assert_eq!(window_out(2, 1, 2, 0, 1, true), Some(1));
        // Ceil mode with a window larger than the padded input: ceil(-1/2) + 1 = 1, as in
        // PyTorch; floor mode rejects it.
        assert_eq!(window_out(2, 3, 2, 0, 1, true), Some(1));
        assert_eq!(window_out(2, 3, 2, 0, 1, false), None);
        assert_eq!(window_out(1, 4, 2, 0, 1, true), None);
        // Dilation: 3x3 dil 2 spans 5.
        assert_eq!(window_out(7, 3, 1, 0, 2, false), Some(3));
        assert_eq!(window_out(4, 3, 1, 0, 2, false), None);
    }

    #[test]
    fn dropped_counts_unreached_rows() {
        assert_eq!(dropped(224, 7, 2, 3, 1), 1);
        assert_eq!(dropped(14, 5, 3, 0, 1), 0);
        assert_eq!(dropped(28, 3, 1, 1, 1), 0);
    }

    /// Brute force: the input rows no window position reads, counted from the end.
    fn unread_tail(d: usize, k: usize, s: usize, p: usize, dil: usize) -> usize {
        let o = window_out(d, k, s, p, dil, false).unwrap();
        let mut read = vec![false; d];
        for i in 0..o {
            for j in 0..k {
                if let Some(r) = (i * s + j * dil).checked_sub(p).filter(|&r| r < d) {
                    read[r] = true;
                }
            }
        }
        read.iter().rev().take_while(|r| !**r).count()
    }

    #[test]
    fn unread_input_counts_lost_rows_not_padding_nor_skipped_ones() {
        // GoogLeNet's first conv and pools: only padding is never read.
        assert_eq!(unread_input(224, 7, 2, 3, 1), 0);
        assert_eq!(unread_input(112, 3, 2, 1, 1), 0);
        // A 3×3/2 conv without padding on 32 rows loses the last, and so does AlexNet's
        // 11×11/4 on 224.
        assert_eq!(unread_input(32, 3, 2, 0, 1), 1);
        assert_eq!(unread_input(224, 11, 4, 0, 1), 1);
        // A 1×1/2 projection skips every other row by design: nothing to warn about.
        assert_eq!(unread_input(32, 1, 2, 0, 1), 0);
        assert_eq!(unread_input(9, 3, 2, 0, 2), 0);
        // Windows at least as wide as their stride read every row up to the last window's
        // end: what they lose is the brute force's unread tail. A dilated window may leave
        // more rows unread in its last taps' gaps; the count is a lower bound there.
        for d in 1..24 {
            for k in 1..6 {
                for s in 1..5 {
                    for p in 0..3 {
                        for dil in 1..4 {
                            if 2 * p >= k * dil || window_out(d, k, s, p, dil, false).is_none() {
                                continue;
                            }
                            let (got, tail) =
                                (unread_input(d, k, s, p, dil), unread_tail(d, k, s, p, dil));
                            let at = format!("d={d} k={k} s={s} p={p} dil={dil}");
                            if dil == 1 && k >= s {
                                assert_eq!(got, tail, "{at}");
                            } else {
                                assert!(got <= tail, "{at}");
                            }
                        }
                    }
                }
            }
        }
    }
}
