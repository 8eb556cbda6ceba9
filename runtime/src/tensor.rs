//! Moving tensors around: concatenation along channels and its adjoint (slicing the
//! gradient back out), elementwise sums, and accumulation of gradients where a value fans
//! out. Tensors are NCHW; a channel slice of one image is contiguous, which is what lets a
//! layer write its output straight into its slice of a concat ([`Slot`]).

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
