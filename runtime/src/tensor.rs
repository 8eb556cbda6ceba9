//! Moving and combining tensors: concatenation along channels and its adjoint (slicing the
//! gradient back out), the channel shuffle, elementwise sums and products (with a per-sample
//! channel gate, as squeeze-and-excitation), a learned per-channel scale, and accumulation of
//! gradients where a value fans out. Tensors are NCHW; a channel slice of one image is
//! contiguous, which is what lets a layer write its output straight into its slice of a
//! concat ([`Slot`]).

use std::ops::Range;

/// Where the images of a batch tensor lie in a buffer: image `i` is the `len` elements
/// from `offset + i·stride`. A dense tensor is `Slot::dense(len)`; channels `c0..c0+c` of a
/// concat of `C` channels over `plane` pixels are `Slot::channels(c0, C, plane)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Elements before image 0.
    pub offset: usize,
    /// Elements from one image to the next.
    pub stride: usize,
}

impl Slot {
    /// Images of `len` elements, one after another.
    pub fn dense(len: usize) -> Slot {
        Slot {
            offset: 0,
            stride: len,
        }
    }

    /// Channels from `c0` of a tensor of `channels` channels of `plane` elements each.
    pub fn channels(c0: usize, channels: usize, plane: usize) -> Slot {
        Slot {
            offset: c0 * plane,
            stride: channels * plane,
        }
    }

    /// The elements of image `i`, `len` long.
    pub fn image(self, i: usize, len: usize) -> Range<usize> {
        let at = self.offset + i * self.stride;
        at..at + len
    }

    /// Panics unless `n` images of `len` elements fit a buffer of `buf` elements without
    /// overlapping each other.
    pub fn check(self, n: usize, len: usize, buf: usize, what: &str) {
        assert!(n <= 1 || len <= self.stride, "{what}: images overlap");
        assert!(
            n == 0 || self.image(n - 1, len).end <= buf,
            "{what}: buffer of {buf} too short for {n} images of {len} at {self:?}"
        );
    }
}

/// Disjoint mutable views of `arena` for one call of generated code: part `j` is the
/// `batch·len_j` elements from `batch·offset_j` (`parts` are per sample, as the memory plan
/// places them). Buffers that share memory by the plan are never live in the same call;
/// should they be, this panics instead of letting one call see two aliased buffers.
pub fn carve<const K: usize>(
    arena: &mut [f32],
    batch: usize,
    parts: [(usize, usize); K],
) -> [&mut [f32]; K] {
    let mut order: Vec<usize> = (0..K).collect();
    order.sort_by_key(|&j| parts[j].0);
    let mut views: Vec<Option<&mut [f32]>> = (0..K).map(|_| None).collect();
    let (mut rest, mut at) = (arena, 0usize);
    for j in order {
        let (offset, len) = (batch * parts[j].0, batch * parts[j].1);
        assert!(offset >= at, "carve: parts {parts:?} overlap");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(offset - at);
        let (view, tail) = tail.split_at_mut(len);
        views[j] = Some(view);
        rest = tail;
        at = offset + len;
    }
    views
        .into_iter()
        .map(|v| v.expect("every part is carved"))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| unreachable!("K views"))
}

/// Copies `x` (`n × c_x × plane`) into channels `c0..c0+c_x` of `y` (`n × c_y × plane`).
/// Into a zeroed `y`, it is also the backward of a `slice` of channels, whose forward is
/// [`slice_channels`].
pub fn concat_channels(
    n: usize,
    plane: usize,
    c_x: usize,
    c0: usize,
    c_y: usize,
    x: &[f32],
    y: &mut [f32],
) {
    assert!(c0 + c_x <= c_y, "concat: channel range");
    assert!(
        x.len() == n * c_x * plane && y.len() == n * c_y * plane,
        "concat: lengths"
    );
    for i in 0..n {
        let dst = (i * c_y + c0) * plane;
        y[dst..dst + c_x * plane].copy_from_slice(&x[i * c_x * plane..(i + 1) * c_x * plane]);
    }
}

/// The adjoint of [`concat_channels`]: copies channels `c0..c0+c_x` of `dy` into `dx`.
/// It is also the forward of a `slice` of channels `c0..c0+c_x`.
pub fn slice_channels(
    n: usize,
    plane: usize,
    c_x: usize,
    c0: usize,
    c_y: usize,
    dy: &[f32],
    dx: &mut [f32],
) {
    assert!(c0 + c_x <= c_y, "slice: channel range");
    assert!(
        dx.len() == n * c_x * plane && dy.len() == n * c_y * plane,
        "slice: lengths"
    );
    for i in 0..n {
        let src = (i * c_y + c0) * plane;
        dx[i * c_x * plane..(i + 1) * c_x * plane].copy_from_slice(&dy[src..src + c_x * plane]);
    }
}

/// `y = Σ xs` elementwise.
pub fn add_forward(xs: &[&[f32]], y: &mut [f32]) {
    assert!(
        !xs.is_empty() && xs.iter().all(|x| x.len() == y.len()),
        "add: lengths"
    );
    y.copy_from_slice(xs[0]);
    for x in &xs[1..] {
        accumulate(x, y);
    }
}

/// `acc += x`: the gradient of a value that feeds several layers is the sum of theirs.
pub fn accumulate(x: &[f32], acc: &mut [f32]) {
    assert_eq!(x.len(), acc.len(), "accumulate: lengths");
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// `y = a · b` elementwise, `a` being `n × c × plane_a`. `b` has the same shape
/// (`plane_b = plane_a`) or one value per sample and channel (`plane_b = 1`, `[C,1,1]`,
/// broadcast over the plane: squeeze-and-excitation's gate).
pub fn mul_forward(
    n: usize,
    c: usize,
    plane_a: usize,
    plane_b: usize,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    check_mul(n, c, plane_a, plane_b, a.len(), b.len(), y.len());
    if plane_b == plane_a {
        for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
            *o = u * v;
        }
        return;
    }
    for ((ys, xs), &g) in y
        .chunks_exact_mut(plane_a)
        .zip(a.chunks_exact(plane_a))
        .zip(b)
    {
        for (o, &u) in ys.iter_mut().zip(xs) {
            *o = u * g;
        }
    }
}

/// The gradient of [`mul_forward`] (overwrites what it is given): `da = dy · b` (`b`
/// broadcast), and `db = dy · a`, or, for `plane_b = 1`, `db[i, c] = Σ_plane dy · a` (summed
/// in f64). Either gradient may be skipped (an input that needs none).
#[allow(clippy::too_many_arguments)]
pub fn mul_backward(
    n: usize,
    c: usize,
    plane_a: usize,
    plane_b: usize,
    a: &[f32],
    b: &[f32],
    dy: &[f32],
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
    check_mul(n, c, plane_a, plane_b, a.len(), b.len(), dy.len());
    if let Some(da) = da {
        assert_eq!(da.len(), a.len(), "mul: gradient length");
        // da = dy · b is the forward with dy in place of a.
        mul_forward(n, c, plane_a, plane_b, dy, b, da);
    }
    let Some(db) = db else { return };
    assert_eq!(db.len(), b.len(), "mul: gradient length");
    if plane_b == plane_a {
        for ((d, &g), &u) in db.iter_mut().zip(dy).zip(a) {
            *d = g * u;
        }
        return;
    }
    for ((d, gs), xs) in db
        .iter_mut()
        .zip(dy.chunks_exact(plane_a))
        .zip(a.chunks_exact(plane_a))
    {
        *d = gs
            .iter()
            .zip(xs)
            .map(|(&g, &u)| g as f64 * u as f64)
            .sum::<f64>() as f32;
    }
}

fn check_mul(n: usize, c: usize, plane_a: usize, plane_b: usize, a: usize, b: usize, y: usize) {
    assert!(
        plane_b == plane_a || plane_b == 1,
        "mul: b must have a's shape or one value per channel (plane {plane_b}, a's {plane_a})"
    );
    assert!(
        a == n * c * plane_a && b == n * c * plane_b && y == a,
        "mul: lengths"
    );
}

/// `y = x · w[c]`: a learned factor per channel, shared by the batch (ConvNeXt's layer
/// scale, `w` of shape `[C,1,1]`).
pub fn scale_forward(n: usize, c: usize, plane: usize, x: &[f32], w: &[f32], y: &mut [f32]) {
    assert!(
        x.len() == n * c * plane && y.len() == x.len() && w.len() == c,
        "scale: lengths"
    );
    for (r, (ys, xs)) in y
        .chunks_exact_mut(plane.max(1))
        .zip(x.chunks_exact(plane.max(1)))
        .enumerate()
    {
        let k = w[r % c];
        for (o, &v) in ys.iter_mut().zip(xs) {
            *o = v * k;
        }
    }
}

/// The gradient of [`scale_forward`] (overwrites both): `dx = dy · w[c]` (skipped when
/// `dx` is `None`) and `dw[c] = Σ_{n, plane} dy · x`, summed over the batch in f64.
#[allow(clippy::too_many_arguments)]
pub fn scale_backward(
    n: usize,
    c: usize,
    plane: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
) {
    assert!(
        x.len() == n * c * plane && dy.len() == x.len() && w.len() == c && dw.len() == c,
        "scale: lengths"
    );
    if let Some(dx) = dx {
        scale_forward(n, c, plane, dy, w, dx);
    }
    for (ch, d) in dw.iter_mut().enumerate() {
        let mut sum = 0.0f64;
        for i in 0..n {
            let at = (i * c + ch) * plane..(i * c + ch + 1) * plane;
            sum += dy[at.clone()]
                .iter()
                .zip(&x[at])
                .map(|(&g, &v)| g as f64 * v as f64)
                .sum::<f64>();
        }
        *d = sum as f32;
    }
}

/// ShuffleNet's channel shuffle, as torchvision's: the `c` channels of each sample, seen as
/// `groups × c/groups`, are transposed to `c/groups × groups` (output channel
/// `k·groups + g` is input channel `g·c/groups + k`).
pub fn channel_shuffle_forward(
    n: usize,
    c: usize,
    groups: usize,
    plane: usize,
    x: &[f32],
    y: &mut [f32],
) {
    assert!(
        groups > 0 && c.is_multiple_of(groups),
        "channel_shuffle: {c} channels in {groups} groups"
    );
    transpose_channels(n, groups, c / groups, plane, x, y);
}

/// The gradient of [`channel_shuffle_forward`], its inverse permutation (overwrites `dx`).
pub fn channel_shuffle_backward(
    n: usize,
    c: usize,
    groups: usize,
    plane: usize,
    dy: &[f32],
    dx: &mut [f32],
) {
    assert!(
        groups > 0 && c.is_multiple_of(groups),
        "channel_shuffle: {c} channels in {groups} groups"
    );
    transpose_channels(n, c / groups, groups, plane, dy, dx);
}

/// Channels of each sample seen as `rows × cols` go to `cols × rows`: channel `r·cols + k`
/// of `x` is channel `k·rows + r` of `y`.
fn transpose_channels(n: usize, rows: usize, cols: usize, plane: usize, x: &[f32], y: &mut [f32]) {
    let len = rows * cols * plane;
    assert!(
        x.len() == n * len && y.len() == x.len(),
        "channel_shuffle: lengths"
    );
    for (xs, ys) in x
        .chunks_exact(len.max(1))
        .zip(y.chunks_exact_mut(len.max(1)))
    {
        for r in 0..rows {
            for k in 0..cols {
                let (from, to) = ((r * cols + k) * plane, (k * rows + r) * plane);
                ys[to..to + plane].copy_from_slice(&xs[from..from + plane]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_gives_each_part_its_range_in_any_order() {
        let mut arena: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let [a, b, c] = carve(&mut arena, 2, [(6, 2), (0, 1), (3, 3)]);
        assert_eq!(a, &[12.0, 13.0, 14.0, 15.0]);
        assert_eq!(b, &[0.0, 1.0]);
        assert_eq!(c, &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        a[0] = -1.0;
        assert_eq!(arena[12], -1.0);
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn carve_refuses_overlapping_parts() {
        let mut arena = vec![0.0; 10];
        let _ = carve(&mut arena, 1, [(0, 4), (3, 2)]);
    }

    #[test]
    #[should_panic]
    fn carve_refuses_parts_past_the_end() {
        let mut arena = vec![0.0; 10];
        let _ = carve(&mut arena, 2, [(4, 2)]);
    }
}
