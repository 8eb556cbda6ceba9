//! The window rule of docs/language.md (floor or PyTorch's ceil mode, padding, dilation)
//! that convolutions and pools share, and the shape checks every op uses.

use super::{pair_str, product, OpError, Pair, MAX_ELEMENTS};
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

/// `7×7/2`: a window and its stride, for reports.
pub(crate) fn describe(k: Pair, s: Pair) -> String {
    let s = if s[0] == s[1] {
        s[0].to_string()
    } else {
        pair_str(s)
    };
    format!("{}×{}/{}", k[0], k[1], s)
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

pub(crate) fn expect_image(op: &str, x: &Shape) -> Result<(), OpError> {
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

pub(crate) fn checked_shape(shape: Shape) -> Result<Shape, OpError> {
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
pub(crate) struct Window {
    pub k: Pair,
    pub s: Pair,
    pub p: Pair,
    pub dil: Pair,
    pub ceil: bool,
}

pub(crate) fn window_shape(op: &str, x: &Shape, out_c: usize, w: Window) -> Result<Shape, OpError> {
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

pub(crate) fn weights_fit(n: u128) -> Result<(), OpError> {
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
