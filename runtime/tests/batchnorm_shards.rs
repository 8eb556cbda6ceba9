//! Batchnorm over shards that run together (`shard::Group`): each shard holds some of the
//! batch's images, and the statistics are the whole batch's. The outputs, the running
//! statistics, `dx`, and the shards' `dγ`, `dβ` summed by their shares must be what one
//! whole batch computes, to rounding; and a batch whose shards each hold a value far from
//! the others' must still get the batch's variance, not the shards'.

use netc_runtime::gemm::Act;
use netc_runtime::norm::*;
use netc_runtime::rng::Rng;
use netc_runtime::shard::{self, Group};

/// Everything a training step of one batchnorm gives.
#[derive(Debug, Clone)]
struct Out {
    y: Vec<f32>,
    running: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// One batchnorm (with ReLU) forward and backward over images `n` of `x` and `dy`.
#[allow(clippy::too_many_arguments)]
fn step(
    peers: Option<&shard::Peers>,
    n: usize,
    c: usize,
    plane: usize,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> Out {
    let (mut rm, mut rv) = (vec![0.5; c], vec![2.0; c]);
    let (mut mean, mut rstd) = (vec![0.0; c], vec![0.0; c]);
    let mut y = vec![0.0; x.len()];
    batchnorm_train_forward_act(
        peers,
        n,
        c,
        plane,
        1e-5,
        0.1,
        x,
        gamma,
        beta,
        Act::Relu,
        &mut rm,
        &mut rv,
        &mut y,
        &mut mean,
        &mut rstd,
    );
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    batchnorm_train_backward_act(
        peers,
        n,
        c,
        plane,
        x,
        &y,
        Act::Relu,
        gamma,
        &mean,
        &rstd,
        dy,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    rm.extend(rv);
    Out {
        y,
        running: rm,
        dx,
        dgamma,
        dbeta,
    }
}

fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (&p, &q)) in a.iter().zip(b).enumerate() {
        let scale = p.abs().max(q.abs()).max(1.0);
        assert!((p - q).abs() <= tol * scale, "{what}[{i}]: {p} vs {q}");
    }
}

/// The batch `x` in `shards` shards against the whole batch, with a random `dy`: a shard's
/// `dy` is the batch's divided by its share (the gradient of its own mean loss).
fn shards_against_whole(shards: usize, x: &[f32], n: usize, c: usize, plane: usize) {
    let mut rng = Rng::new(9);
    let dy: Vec<f32> = (0..x.len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let gamma: Vec<f32> = (0..c).map(|_| rng.uniform(0.5, 2.0)).collect();
    let beta: Vec<f32> = (0..c).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let whole = step(None, n, c, plane, x, &dy, &gamma, &beta);

    let ranges = shard::ranges(n, shards);
    let w = shard::weights(&ranges, n);
    let group = Group::new(&w);
    let per = c * plane;
    let mut parts: Vec<_> = ranges.iter().cloned().enumerate().collect();
    let outs = group.run(&mut parts, |k, (_, r)| {
        let xs = &x[r.start * per..r.end * per];
        let dys: Vec<f32> = dy[r.start * per..r.end * per]
            .iter()
            .map(|&g| g / w[k])
            .collect();
        step(
            Some(&group.peer(k)),
            r.len(),
            c,
            plane,
            xs,
            &dys,
            &gamma,
            &beta,
        )
    });
    let y: Vec<f32> = outs.iter().flat_map(|o| o.y.clone()).collect();
    close("y", &y, &whole.y, 1e-5);
    for o in &outs {
        close("running statistics", &o.running, &whole.running, 1e-5);
    }
    // Each shard's dx is in its own loss's scale: times its share, the batch's.
    let dx: Vec<f32> = outs
        .iter()
        .zip(&w)
        .flat_map(|(o, &wk)| o.dx.iter().map(move |&d| d * wk))
        .collect();
    close("dx", &dx, &whole.dx, 1e-4);
    let sum = |f: fn(&Out) -> &Vec<f32>| -> Vec<f32> {
        let mut d = f(&outs[0]).clone();
        let rest: Vec<&[f32]> = outs[1..].iter().map(|o| f(o).as_slice()).collect();
        shard::combine(&mut d, &w, &rest);
        d
    };
    close("dgamma", &sum(|o| &o.dgamma), &whole.dgamma, 1e-4);
    close("dbeta", &sum(|o| &o.dbeta), &whole.dbeta, 1e-4);
}

#[test]
fn two_shards_compute_the_whole_batch() {
    let mut rng = Rng::new(4);
    let (n, c, plane) = (6, 5, 49);
    let x: Vec<f32> = (0..n * c * plane).map(|_| rng.uniform(-2.0, 3.0)).collect();
    shards_against_whole(2, &x, n, c, plane);
}

/// Each shard's images are nearly constant, and the shards far apart: the batch's variance
/// comes almost all from between the shards, which shard-local statistics would miss.
#[test]
fn shards_far_apart_get_the_batch_variance() {
    let mut rng = Rng::new(8);
    let (n, c, plane) = (4, 3, 16);
    let per = c * plane;
    let x: Vec<f32> = (0..n * per)
        .map(|i| if i < 2 * per { 100.0 } else { 300.0 } + rng.uniform(-0.01, 0.01))
        .collect();
    shards_against_whole(2, &x, n, c, plane);
}

/// Three shards of 2, 2 and 3 images (weights that are not powers of two), a mean far from
/// zero.
#[test]
fn uneven_shards_compute_the_whole_batch() {
    let mut rng = Rng::new(6);
    let (n, c, plane) = (7, 4, 25);
    let x: Vec<f32> = (0..n * c * plane)
        .map(|_| rng.uniform(45.0, 55.0))
        .collect();
    shards_against_whole(3, &x, n, c, plane);
}
