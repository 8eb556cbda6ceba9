//! The pools: MaxPool and AveragePool, and those ONNX says in more than one node: a zero
//! `Pad` then an `AveragePool` that does not count padding (netc's export of `avgpool` with
//! padding, which counts it: the Pad's zeros are data to ONNX), and an adaptive average pool
//! with uneven bins as a `MatMul` by the bin matrix between two Reshapes. The bin matrix must
//! be PyTorch's exactly.

use crate::build::{int_attr, ints_attr, string_attr};
use crate::proto::NodeProto;

use super::act::scalar;
use super::lower::{Arg, Cx, Val};
use super::ops::{image, pads, pair, window};
use super::ImportError;

fn first_out(n: &NodeProto) -> String {
    n.output.first().cloned().unwrap_or_default()
}

/// `MaxPool` → `maxpool`, `AveragePool` → `avgpool` (which counts padding, as PyTorch's
/// default `count_include_pad=True`).
pub(crate) fn pool(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    pool_of(cx, n, n, out, x, None)
}

/// The pool node `n` on `x` as a layer named by node `first`; `padded`: the zero padding a
/// `Pad` before it added, which makes an AveragePool that does not count padding
/// (`count_include_pad=0`) netc's avgpool, which counts it.
pub(crate) fn pool_of(
    cx: &mut Cx,
    first: &NodeProto,
    n: &NodeProto,
    out: &str,
    x: usize,
    padded: Option<[i64; 2]>,
) -> Result<(), ImportError> {
    let [c, h, w] = image(cx, n, x)?;
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ImportError::node(
            n,
            "the pool's indices output is used; netc's maxpool gives values only",
        ));
    }
    let k = pair(n, "kernel_shape", 0)?;
    let s = pair(n, "strides", 1)?;
    let dil = pair(n, "dilations", 1)?;
    if dil != [1, 1] {
        return Err(ImportError::node(
            n,
            &format!("dilations {dil:?}; netc's pools are not dilated"),
        ));
    }
    let mut p = pads(n, [h, w], k, s, dil)?;
    let ceil = int_attr(n, "ceil_mode", 0) != 0;
    if let Some(q) = padded {
        if p != [0, 0] || int_attr(n, "count_include_pad", 0) != 0 {
            return Err(ImportError::node(
                n,
                "an AveragePool after a Pad that pads again or counts its padding; netc's avgpool is one zero padding, counted",
            ));
        }
        // netc's windows are PyTorch's: in ceil mode a last window that starts in the right
        // padding is dropped; ONNX keeps it when the padding was a Pad (its input is then
        // all data). Where the two disagree the model is not netc's avgpool.
        for a in 0..2 {
            let d = [h, w][a];
            if window(n, d, k[a], s[a], q[a], 1, ceil)?
                != window(n, d + 2 * q[a] as usize, k[a], s[a], 0, 1, ceil)?
            {
                return Err(ImportError::node(
                    n,
                    "in ceil mode its last window starts in the Pad's padding, which netc (as PyTorch) drops and ONNX keeps",
                ));
            }
        }
        p = q;
    }
    let op = if n.op_type() == "MaxPool" {
        "maxpool"
    } else {
        "avgpool"
    };
    if op == "avgpool"
        && padded.is_none()
        && p != [0, 0]
        && int_attr(n, "count_include_pad", 0) == 0
    {
        return Err(ImportError::node(
            n,
            "average pooling with padding and count_include_pad=0; netc's avgpool counts the padding in its divisor (PyTorch's default count_include_pad=True)",
        ));
    }
    if 2 * p[0] > k[0] || 2 * p[1] > k[1] {
        return Err(ImportError::node(
            n,
            &format!("padding {p:?} is over half the window {k:?}"),
        ));
    }
    let ho = window(n, h, k[0], s[0], p[0], 1, ceil)?;
    let wo = window(n, w, k[1], s[1], p[1], 1, ceil)?;
    let mut args = vec![("k", Arg::Pair(k[0], k[1]))];
    super::ops::pair_arg(&mut args, "s", s, k);
    super::ops::pair_arg(&mut args, "p", p, [0, 0]);
    if ceil {
        args.push(("ceil", Arg::Bool(true)));
    }
    cx.layer(first, out, op, args, vec![x], vec![c, ho, wo], vec![], None);
    Ok(())
}

/// `Pad` (zeros, on H and W, alike on both sides) and the `AveragePool` that alone reads it
/// → `avgpool(k, s, p, ceil)`; any other Pad is refused.
pub(crate) fn pad_avgpool(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let refuse = |why: &str| {
        Err(ImportError::node(
            n,
            &format!("netc has no standalone padding: a Pad is imported only as an average pool's (zeros on H and W, alike on both sides, then an AveragePool with count_include_pad=0); {why}"),
        ))
    };
    let x = cx.tensor(n, 0)?;
    if cx.shape(x).len() != 3 {
        return refuse("this one pads a tensor that is not an image");
    }
    let zero = n
        .input
        .get(2)
        .is_none_or(|s| s.is_empty() || scalar(cx, s) == Some(0.0));
    if string_attr(n, "mode", "constant") != "constant" || !zero {
        return refuse("this one is not constant zeros");
    }
    if n.input.get(3).is_some_and(|s| !s.is_empty()) {
        return refuse("this one names its axes");
    }
    let amounts = n
        .input
        .get(1)
        .and_then(|s| cx.eval(s))
        .and_then(|c| c.ints())
        .or_else(|| ints_attr(n, "pads"));
    let [ph, pw] = match amounts.as_deref() {
        Some(&[0, 0, ph, pw, 0, 0, eh, ew])
            if ph == eh
                && pw == ew
                && (0..=1 << 31).contains(&ph)
                && (0..=1 << 31).contains(&pw) =>
        {
            [ph, pw]
        }
        Some(p) => return refuse(&format!("this one pads {p:?}")),
        None => return refuse("its amounts are not a constant"),
    };
    let Some((j, pool)) = cx.next(out, "AveragePool") else {
        return refuse("no AveragePool alone reads this one");
    };
    if int_attr(pool, "count_include_pad", 0) != 0 {
        return refuse("its AveragePool counts padding (count_include_pad=1)");
    }
    cx.take(j);
    let pooled = first_out(pool);
    pool_of(cx, n, pool, &pooled, x, Some([ph, pw]))
}

/// Input rows of output row `i` of `o` over `d` rows: PyTorch's adaptive bins.
fn bin(i: usize, o: usize, d: usize) -> std::ops::Range<usize> {
    (i * d / o)..((i + 1) * d).div_ceil(o)
}

/// Whether `m` ([H·W, oh·ow], row-major) is the matrix of PyTorch's adaptive average pool
/// from [H, W] to [oh, ow].
fn is_bin_matrix(m: &[f64], [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> bool {
    let cols = oh * ow;
    if m.len() != h * w * cols {
        return false;
    }
    for i in 0..oh {
        for j in 0..ow {
            let (rows, cs) = (bin(i, oh, h), bin(j, ow, w));
            let inv = 1.0 / (rows.len() * cs.len()) as f64;
            for r in 0..h {
                for s in 0..w {
                    let want = if rows.contains(&r) && cs.contains(&s) {
                        inv
                    } else {
                        0.0
                    };
                    if (m[(r * w + s) * cols + i * ow + j] - want).abs() > 1e-6 * inv {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// `Reshape` [N, C, H·W], `MatMul` by the bin matrix, `Reshape` [N, C, oh, ow] →
/// `adaptive_avgpool([oh, ow])`. `Ok(false)`: the Reshape starts no such pattern.
pub(crate) fn adaptive(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<bool, ImportError> {
    let Some(&Val::T(x)) = n.input.first().and_then(|s| cx.vals.get(s)) else {
        return Ok(false);
    };
    let &[c, h, w] = cx.shape(x) else {
        return Ok(false);
    };
    let is_batch = |t: &super::graph::Const| t.batch.contains(&0) || t.data.first() == Some(&0.0);
    let planes = n.input.get(1).and_then(|s| cx.eval(s));
    if !planes.is_some_and(|t| {
        t.data.len() == 3 && is_batch(&t) && t.data[1..] == [c as f64, (h * w) as f64]
    }) {
        return Ok(false);
    }
    let Some((j1, mm)) = cx.next(out, "MatMul") else {
        return Ok(false);
    };
    let bins = match mm.input.get(1).map(|s| cx.vals.get(s)) {
        Some(Some(Val::C(b))) if mm.input[0] == out && b.dims.len() == 2 && b.dims[0] == h * w => {
            b.clone()
        }
        _ => return Ok(false),
    };
    let mm_out = first_out(mm);
    let Some((j2, back)) = cx.next(&mm_out, "Reshape") else {
        return Ok(false);
    };
    let Some(t) = back.input.get(1).and_then(|s| cx.eval(s)) else {
        return Ok(false);
    };
    let cols = bins.dims[1];
    let to = |v: f64| (v >= 1.0 && v.fract() == 0.0 && v <= cols as f64).then_some(v as usize);
    let (oh, ow) = match t.data.as_slice() {
        [_, ch, a, b] if is_batch(&t) && *ch == c as f64 => match (to(*a), to(*b)) {
            (Some(a), Some(b)) if a * b == cols => (a, b),
            _ => return Ok(false),
        },
        _ => return Ok(false),
    };
    if !is_bin_matrix(&bins.data, [h, w], [oh, ow]) {
        return Err(ImportError::node(
            mm,
            &format!("MatMul by a [{}, {cols}] matrix between the Reshapes of an adaptive average pool, which is not PyTorch's bins from [{h}, {w}] to [{oh}, {ow}]", h * w),
        ));
    }
    cx.take(j1);
    cx.take(j2);
    cx.layer(
        n,
        &first_out(back),
        "adaptive_avgpool",
        vec![("out", Arg::Pair(oh as i64, ow as i64))],
        vec![x],
        vec![c, oh, ow],
        vec![],
        None,
    );
    Ok(true)
}
