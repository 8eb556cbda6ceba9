//! GEMM speed by operand layout, for choosing how conv backward passes call it.
//! `cargo run --release -p netc-runtime --example gemm_layouts`
use netc_runtime::bench::median_seconds;
use netc_runtime::gemm::{set_num_threads, sgemm, Epilogue};

fn main() {
    set_num_threads(1);
    let (m, n, k) = (128usize, 864usize, 784usize);
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let gf = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
    // dW = dY (m×k, row-major) · colᵀ (col is n×k row-major)
    let (_, s1) = median_seconds(|| {
        sgemm(
            m,
            n,
            k,
            1.0,
            &a,
            k as isize,
            1,
            &b,
            1,
            k as isize,
            0.0,
            &mut c,
            n as isize,
            1,
            Epilogue::NONE,
        )
    });
    // dWᵀ = col (n×k row-major) · dYᵀ, written transposed into dW
    let (_, s2) = median_seconds(|| {
        sgemm(
            n,
            m,
            k,
            1.0,
            &b,
            k as isize,
            1,
            &a,
            1,
            k as isize,
            0.0,
            &mut c,
            1,
            n as isize,
            Epilogue::NONE,
        )
    });
    // row-major reference
    let (_, s3) = median_seconds(|| {
        sgemm(
            m,
            n,
            k,
            1.0,
            &a,
            k as isize,
            1,
            &b,
            n as isize,
            1,
            0.0,
            &mut c,
            n as isize,
            1,
            Epilogue::NONE,
        )
    });
    println!(
        "dY·colᵀ {:.1} GFLOP/s; (col·dYᵀ)ᵀ {:.1}; row-major {:.1}",
        gf(s1),
        gf(s2),
        gf(s3)
    );
}
