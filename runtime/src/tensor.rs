//! Moving tensors around: concatenation along channels and its adjoint (slicing the
//! gradient back out), elementwise sums, and accumulation of gradients where a value fans
//! out. Tensors are NCHW; a channel slice of one image is contiguous.

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
