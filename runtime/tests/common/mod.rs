//! Reading the PyTorch fixtures (`fixtures/*.json`, made by the scripts beside them) and
//! comparing with them, shared by the tests against PyTorch.

use serde_json::Value;

/// A tensor of a fixture: its shape and its values in row-major order.
pub struct T {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The tensor `{"shape": [...], "data": [...]}` at `v`.
pub fn t(v: &Value) -> T {
    T {
        shape: v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect(),
        data: v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap() as f32)
            .collect(),
    }
}

/// `|a - b| <= atol + rtol·|b|` everywhere; on failure, the largest difference and the first
/// bad index.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    let mut first_bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        if d > worst.0 || d.is_nan() {
            worst = (d, i);
        }
        if (d > atol + rtol * w.abs() || d.is_nan()) && first_bad.is_none() {
            first_bad = Some(i);
        }
    }
    if let Some(i) = first_bad {
        panic!(
            "{what}: first bad index {i} (got {}, want {}); largest difference {} at {}",
            got[i], want[i], worst.0, worst.1
        );
    }
}

/// [`assert_close`] with the tolerances of every fixture test.
pub fn close(what: &str, got: &[f32], want: &T) {
    assert_close(what, got, &want.data, 1e-4, 1e-5);
}

/// The cases of a fixture file in `tests/fixtures/` whose op is `op` (at least one).
pub fn of(file: &str, op: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases: Vec<Value> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == op)
        .cloned()
        .collect();
    assert!(!cases.is_empty(), "no fixture for {op} in {file}");
    cases
}
