//! The accumulating data gradients are bitwise equal on 1 and 2 threads, on every path of a
//! conv, for a conv_t, a linear layer and merged 1×1 convs: `dx += ∂L/∂x` goes through the
//! GEMM's beta tile by tile (or col2im, on one thread), and GEMMs split over output rows and
//! columns only. One test in its own binary, since the thread count is global. The shapes are
//! large enough that each GEMM writing dX splits (over 2²¹ multiply-adds).

use netc_runtime::conv::*;
use netc_runtime::conv_t::*;
use netc_runtime::gemm::set_num_threads;
use netc_runtime::linear::linear_backward_data_acc;
use netc_runtime::rng::Rng;
use netc_runtime::tensor::Slot;

fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Each accumulating kernel once, from the same `dx0`s.
fn run_all(seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let n = 2;
    let convs = [
        // dX as a conv with the flipped kernel: m = 32, n = 576, k = 288.
        ("3×3 stride 1", Conv2d::square(32, 24, 24, 32, 3, 1, 1)),
        // GEMM into col, col2im: m = 288, n = 144, k = 64.
        ("3×3 stride 2", Conv2d::square(32, 24, 24, 64, 3, 2, 1)),
        // Pointwise: m = 64, n = 576, k = 96.
        ("1×1", Conv2d::square(64, 24, 24, 96, 1, 1, 0)),
    ];
    for (what, g) in convs {
        let (xs, ys) = (g.c * g.h * g.w, g.out * g.ho() * g.wo());
        let w = random(&mut rng, g.weight_len());
        let dy = random(&mut rng, n * ys);
        let mut col = vec![0.0; g.col_len()];
        let mut dx = random(&mut rng, n * xs);
        conv2d_backward_data_acc(&g, n, &w, &dy, &mut dx, &mut col);
        out.push((what.to_string(), dx));
        let dys = Slot::channels(1, g.out + 2, g.ho() * g.wo());
        let wide = random(&mut rng, n * (g.out + 2) * g.ho() * g.wo());
        let mut dx = random(&mut rng, n * xs);
        conv2d_backward_data_slot_acc(&g, n, &w, &wide, dys, &mut dx, &mut col);
        out.push((format!("{what}, slot"), dx));
    }

    // Its adjoint's forward: m = 32, n = 576, k = 288.
    let t = ConvT2d {
        c: 32,
        h: 24,
        w: 24,
        out: 32,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
        oph: 0,
        opw: 0,
        dh: 1,
        dw: 1,
        groups: 1,
    };
    let w = random(&mut rng, t.weight_len());
    let dy = random(&mut rng, n * t.out * t.ho() * t.wo());
    let mut col = vec![0.0; t.col_len()];
    let mut dx = random(&mut rng, n * t.c * t.h * t.w);
    conv_t2d_backward_data_acc(&t, n, &w, &dy, &mut dx, &mut col);
    out.push(("conv_t".to_string(), dx));

    let (batch, fin, fout) = (64, 256, 300);
    let w = random(&mut rng, fout * fin);
    let dy = random(&mut rng, batch * fout);
    let mut dx = random(&mut rng, batch * fin);
    linear_backward_data_acc(batch, fin, fout, &w, &dy, &mut dx);
    out.push(("linear".to_string(), dx));

    // m = 64, n = 576, k = 96 in two parts.
    let g = Conv2d::square(64, 24, 24, 96, 1, 1, 0);
    let p = g.h * g.w;
    let x = random(&mut rng, n * g.c * p);
    let ws = [random(&mut rng, 40 * g.c), random(&mut rng, 56 * g.c)];
    let dys = [random(&mut rng, n * 40 * p), random(&mut rng, n * 56 * p)];
    let dests = [(0, Slot::dense(40 * p)), (1, Slot::dense(56 * p))];
    let mut dw = [vec![0.0; 40 * g.c], vec![0.0; 56 * g.c]];
    let [dw0, dw1] = &mut dw;
    let mut col = vec![0.0; merged_col_len(g.c, g.out, p)];
    let mut dx = random(&mut rng, x.len());
    conv1x1_merged_backward_acc(
        &g,
        n,
        &x,
        &[&ws[0], &ws[1]],
        &[&dys[0], &dys[1]],
        &dests,
        &mut [dw0, dw1],
        None,
        Some(&mut dx),
        &mut col,
    );
    out.push(("merged 1×1".to_string(), dx));
    out
}

#[test]
fn accumulating_data_gradients_are_bitwise_equal_on_1_and_2_threads() {
    set_num_threads(1);
    let one = run_all(3);
    set_num_threads(2);
    let two = run_all(3);
    for ((what, a), (_, b)) in one.iter().zip(&two) {
        let same = a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{what}: dx differs between 1 and 2 threads");
    }
}
