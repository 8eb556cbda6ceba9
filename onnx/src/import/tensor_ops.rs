//! The ops that move or combine tensors: flatten (Flatten, Reshape to [N, -1]), channel
//! shuffle (Reshape, Transpose, Reshape), Concat on channels, Add, Mul (elementwise, an SE
//! gate, or a learned per-channel factor: `scale`), Softmax, Resize, Slice and Split on
//! channels, and ReduceMean over the plane (a global average pool).

use crate::build::{int_attr, ints_attr, string_attr};
use crate::proto::NodeProto;

use super::graph::Const;
use super::lower::{Arg, Cx, Param, Val};
use super::ops::dims;
use super::ImportError;

/// An axis of a `[N, ...per-sample]` tensor as a per-sample axis (`None`: the batch).
fn sample_axis(n: &NodeProto, axis: i64, rank: usize) -> Result<Option<usize>, ImportError> {
    let full = rank as i64 + 1;
    let a = if axis < 0 { axis + full } else { axis };
    if !(0..full).contains(&a) {
        return Err(ImportError::node(
            n,
            &format!("axis {axis} of a tensor of {full} dimensions"),
        ));
    }
    Ok((a > 0).then(|| a as usize - 1))
}

/// A shape vector's entry: the batch (or `0`, "copy", which is the batch in place 0).
fn is_batch(c: &Const, i: usize) -> bool {
    c.batch.contains(&i) || (i == 0 && c.data.first() == Some(&0.0))
}

/// `Flatten` (axis 1) and `Reshape`: to `[N, -1]` is flatten, the shuffle pattern is
/// channel_shuffle, a reshape to the same shape is nothing.
pub(crate) fn reshape(cx: &mut Cx, _i: usize, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    if let Some(Val::Shuffle {
        x,
        g,
        transposed: true,
        ..
    }) = n.input.first().and_then(|s| cx.vals.get(s)).cloned()
    {
        let shape = cx.shape(x).to_vec();
        let back = cx
            .konst(n, 1)?
            .cloned()
            .ok_or_else(|| ImportError::node(n, "Reshape without a target shape"))?;
        let ok = shape.len() == 3
            && back.data.len() == 4
            && is_batch(&back, 0)
            && (back.data[1] == shape[0] as f64 || back.data[1] == -1.0)
            && back.data[2..] == [shape[1] as f64, shape[2] as f64];
        if !ok {
            return Err(ImportError::node(
                n,
                &format!(
                    "channel shuffle's last Reshape is to {:?}, not [N, C, H, W]",
                    back.data
                ),
            ));
        }
        cx.layer(
            n,
            out,
            "channel_shuffle",
            vec![("groups", Arg::Int(g))],
            vec![x],
            shape,
            vec![],
            None,
        );
        return Ok(());
    }
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    let numel: usize = shape.iter().product();
    if n.op_type() == "Flatten" {
        if int_attr(n, "axis", 1) != 1 {
            return Err(ImportError::node(
                n,
                "Flatten of another axis than 1; netc flattens each sample",
            ));
        }
        cx.layer(
            n,
            out,
            "flatten",
            vec![],
            vec![x],
            vec![numel],
            vec![],
            None,
        );
        return Ok(());
    }
    let t = cx
        .konst(n, 1)?
        .cloned()
        .ok_or_else(|| ImportError::node(n, "Reshape without a target shape"))?;
    let entry = |i: usize| {
        if is_batch(&t, i) {
            None
        } else {
            Some(t.data[i])
        }
    };
    let per_sample: Vec<Option<f64>> = (1..t.data.len()).map(entry).collect();
    let first_is_batch = !t.data.is_empty() && is_batch(&t, 0);
    if t.data.len() == 2
        && (first_is_batch && matches!(per_sample[0], Some(v) if v == -1.0 || v == numel as f64)
            || entry(0) == Some(-1.0) && per_sample[0] == Some(numel as f64))
    {
        cx.layer(
            n,
            out,
            "flatten",
            vec![],
            vec![x],
            vec![numel],
            vec![],
            None,
        );
        return Ok(());
    }
    if first_is_batch
        && per_sample
            .iter()
            .zip(&shape)
            .all(|(a, &b)| *a == Some(b as f64))
        && per_sample.len() == shape.len()
    {
        cx.vals.insert(out.to_string(), Val::T(x));
        return Ok(());
    }
    if let (true, 5, [c, h, w]) = (first_is_batch, t.data.len(), shape.as_slice()) {
        let g = per_sample[0].unwrap_or(0.0);
        if g >= 1.0 && per_sample[1..] == [Some(*c as f64 / g), Some(*h as f64), Some(*w as f64)] {
            return shuffle(cx, n, out, x, g as i64, [*c, *h, *w]);
        }
    }
    Err(ImportError::node(
        n,
        &format!(
            "Reshape of [N, {}] to {:?}; netc reshapes only to [N, -1] (flatten) and in the patterns of channel shuffle (Reshape, Transpose [0, 2, 1, 3, 4], Reshape), groupnorm (Reshape [N, G, -1], InstanceNormalization, Reshape, Mul, Add), lrn and adaptive_avgpool (Reshape [N, C, H·W], MatMul by the bins, Reshape)",
            dims(&shape),
            t.data
        ),
    ))
}

/// Channel shuffle's first Reshape: the tensor waits, as [`Val::Shuffle`], for its
/// Transpose and its Reshape back (whose shapes may be computed by later nodes).
fn shuffle(
    cx: &mut Cx,
    n: &NodeProto,
    out: &str,
    x: usize,
    g: i64,
    _chw: [usize; 3],
) -> Result<(), ImportError> {
    cx.vals.insert(
        out.to_string(),
        Val::Shuffle {
            x,
            g,
            transposed: false,
            node: n.name().to_string(),
        },
    );
    Ok(())
}

/// `Transpose` [0, 2, 1, 3, 4] of channel shuffle's 5-D reshape.
pub(crate) fn transpose(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    match n.input.first().and_then(|s| cx.vals.get(s)).cloned() {
        Some(Val::Shuffle { x, g, transposed: false, node }) if ints_attr(n, "perm").as_deref() == Some(&[0, 2, 1, 3, 4]) => {
            cx.vals.insert(out.to_string(), Val::Shuffle { x, g, transposed: true, node });
            Ok(())
        }
        _ => Err(ImportError::node(
            n,
            "a Transpose outside the channel shuffle pattern (Reshape [N, g, C/g, H, W], Transpose [0, 2, 1, 3, 4], Reshape [N, C, H, W]) and layernorm2d's (Transpose [0, 2, 3, 1], LayerNormalization over the last axis, Transpose [0, 3, 1, 2]); netc keeps tensors in NCHW order",
        )),
    }
}

/// All inputs of `n` as tensors, checking they have one shape.
fn same_shape_inputs(cx: &Cx, n: &NodeProto) -> Result<(Vec<usize>, Vec<usize>), ImportError> {
    let mut vs = Vec::new();
    for i in 0..n.input.len() {
        if cx.is_const(n, i) {
            return Err(ImportError::node(
                n,
                &format!("input {i} is a constant; netc's `{}` combines computed tensors only (a bias belongs in a conv or linear)", n.op_type()),
            ));
        }
        vs.push(cx.tensor(n, i)?);
    }
    let Some(&v0) = vs.first() else {
        return Err(ImportError::node(n, "the node has no inputs"));
    };
    let shape = cx.shape(v0).to_vec();
    for &v in &vs[1..] {
        if cx.shape(v) != shape {
            return Err(ImportError::node(
                n,
                &format!(
                    "inputs of shapes [N, {}] and [N, {}]; netc adds tensors of one shape",
                    dims(&shape),
                    dims(cx.shape(v))
                ),
            ));
        }
    }
    Ok((vs, shape))
}

/// `Add` and `Sum` of tensors of one shape → `add`.
pub(crate) fn add(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let (vs, shape) = same_shape_inputs(cx, n)?;
    cx.layer(n, out, "add", vec![], vs, shape, vec![], None);
    Ok(())
}

/// `Concat` on channels → `concat`; a Concat of one input (torchvision's DenseNet writes
/// `torch.cat([x], 1)`) is the identity, and no layer: the value passes through, and no
/// path is made that could shift the others.
pub(crate) fn concat(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let mut vs = Vec::new();
    for i in 0..n.input.len() {
        vs.push(cx.tensor(n, i)?);
    }
    let first = match vs[..] {
        [] => return Err(ImportError::node(n, "the node has no inputs")),
        [v] => {
            cx.vals.insert(out.to_string(), Val::T(v));
            return Ok(());
        }
        [v0, ..] => cx.shape(v0).to_vec(),
    };
    if sample_axis(n, int_attr(n, "axis", 1), first.len())? != Some(0) {
        return Err(ImportError::node(
            n,
            "Concat on another axis than the channels (1)",
        ));
    }
    let mut c = 0;
    for &v in &vs {
        let s = cx.shape(v);
        if s.len() != first.len() || s[1..] != first[1..] {
            return Err(ImportError::node(
                n,
                &format!(
                    "inputs of shapes [N, {}] and [N, {}] do not join on channels",
                    dims(&first),
                    dims(s)
                ),
            ));
        }
        c += s[0];
    }
    let mut shape = first;
    shape[0] = c;
    cx.layer(n, out, "concat", vec![], vs, shape, vec![], None);
    Ok(())
}

/// The weight name a `scale` layer's factor `name` gives: a module's `weight` as it is, a
/// bare nn.Parameter (ConvNeXt's `features.1.0.layer_scale`) as the weight of a layer of its
/// own path (`features.1.0.layer_scale.weight`, noted), not of its module's, whose other
/// layers the path would collide with.
pub(crate) fn scale_name(cx: &mut Cx, name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, "weight")) | None => name.to_string(),
        Some(_) if super::names::param_module(name).is_none() => name.to_string(),
        Some(_) => {
            cx.renamed.push(name.to_string());
            format!("{name}.weight")
        }
    }
}

/// `Mul`: two tensors of one shape, an image by a `[C, 1, 1]` gate (either order), or a
/// tensor by a constant per-channel factor (`scale`, whose weight it becomes).
pub(crate) fn mul(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let consts: Vec<usize> = (0..n.input.len()).filter(|&i| cx.is_const(n, i)).collect();
    if let [k] = consts[..] {
        let x = cx.tensor(n, 1 - k)?;
        let shape = cx.shape(x).to_vec();
        let c = cx.need(n, k, "the factor")?.clone();
        let trimmed: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
        let want: Vec<usize> = match shape.as_slice() {
            [ch, _, _] => vec![*ch, 1, 1],
            s => s.to_vec(),
        };
        let fits = trimmed == want
            || (c.dims.len() == want.len() + 1 && c.dims[0] == 1 && c.dims[1..] == want[..]);
        if !fits || c.data.len() != shape[0] {
            return Err(ImportError::node(
                n,
                &format!("Mul by a constant of dimensions {:?}; netc's `scale` takes one factor per channel ([C, 1, 1])", c.dims),
            ));
        }
        let name = scale_name(cx, &n.input[k]);
        let dims = if shape.len() == 3 {
            vec![shape[0], 1, 1]
        } else {
            vec![shape[0]]
        };
        let params: Vec<Param> = vec![("weight", dims, c.data.iter().map(|&v| v as f32).collect())];
        cx.layer(n, out, "scale", vec![], vec![x], shape, params, Some(&name));
        return Ok(());
    }
    let a = cx.tensor(n, 0)?;
    let b = cx.tensor(n, 1)?;
    let (sa, sb) = (cx.shape(a).to_vec(), cx.shape(b).to_vec());
    let gate = |big: &[usize], g: &[usize]| matches!((big, g), ([c, _, _], [gc, 1, 1]) if c == gc);
    let shape = if sa == sb || gate(&sa, &sb) {
        sa
    } else if gate(&sb, &sa) {
        sb
    } else {
        return Err(ImportError::node(n, &format!("Mul of shapes [N, {}] and [N, {}]; netc multiplies one shape, or an image by a [C, 1, 1] gate", dims(&sa), dims(&sb))));
    };
    cx.layer(n, out, "mul", vec![], vec![a, b], shape, vec![], None);
    Ok(())
}

/// `Softmax` over channels → `softmax`.
pub(crate) fn softmax(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    if sample_axis(n, int_attr(n, "axis", -1), shape.len())? != Some(0) {
        return Err(ImportError::node(
            n,
            "Softmax over another axis than the channels (1)",
        ));
    }
    cx.layer(n, out, "softmax", vec![], vec![x], shape, vec![], None);
    Ok(())
}

/// `Resize` / `Upsample` by one integer factor on H and W, nearest (PyTorch's: asymmetric,
/// floor) or bilinear → `upsample`.
pub(crate) fn resize(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let Some(&[c, h, w]) = Some(cx.shape(x))
        .filter(|s| s.len() == 3)
        .map(|s| <&[usize; 3]>::try_from(s).expect("3"))
    else {
        return Err(ImportError::node(n, "expects an image [N, C, H, W]"));
    };
    let (scales, sizes) = if n.op_type() == "Upsample" {
        (cx.konst(n, 1)?.cloned(), None)
    } else {
        (
            cx.konst(n, 2)?.cloned().filter(|c| !c.data.is_empty()),
            cx.konst(n, 3)?.cloned(),
        )
    };
    let factor = match (scales, sizes) {
        (Some(s), _) if s.data.len() == 4 && s.data[..2] == [1.0, 1.0] && s.data[2] == s.data[3] && s.data[2].fract() == 0.0 && s.data[2] >= 1.0 => s.data[2] as usize,
        (None, Some(z)) if z.data.len() == 4 && z.data[2] == z.data[3] * h as f64 / w as f64 && (z.data[2] as usize).is_multiple_of(h) && (z.data[3] as usize).is_multiple_of(w) && z.data[2] as usize / h == z.data[3] as usize / w => z.data[2] as usize / h,
        _ => return Err(ImportError::node(n, "Resize by other than one integer factor on H and W (constant scales [1, 1, s, s] or sizes); netc's upsample scales by an integer")),
    };
    if factor > 1 << 12 {
        return Err(ImportError::node(
            n,
            &format!("Resize by {factor}, beyond netc's sizes"),
        ));
    }
    let mode = string_attr(n, "mode", "nearest");
    let ct = string_attr(n, "coordinate_transformation_mode", "half_pixel");
    let mut args = vec![("scale", Arg::Int(factor as i64))];
    match mode.as_str() {
        "nearest" => {
            let nearest = string_attr(n, "nearest_mode", "round_prefer_floor");
            if n.op_type() == "Resize" && !(ct == "asymmetric" && nearest == "floor") {
                return Err(ImportError::node(n, &format!("nearest Resize with coordinate_transformation_mode={ct}, nearest_mode={nearest}; netc's nearest upsample is PyTorch's (asymmetric, floor)")));
            }
        }
        "linear" | "bilinear" => {
            args.push(("mode", Arg::Str("bilinear")));
            match ct.as_str() {
                "pytorch_half_pixel" | "half_pixel" => {}
                "align_corners" => args.push(("align_corners", Arg::Bool(true))),
                _ => return Err(ImportError::node(n, &format!("linear Resize with coordinate_transformation_mode={ct}; netc's bilinear upsample is PyTorch's (half_pixel, or align_corners)"))),
            }
        }
        m => {
            return Err(ImportError::node(
                n,
                &format!("Resize mode `{m}`; netc upsamples nearest or bilinear"),
            ))
        }
    }
    if factor == 2 && args.len() == 1 {
        args.clear();
    }
    cx.layer(
        n,
        out,
        "upsample",
        args,
        vec![x],
        vec![c, h * factor, w * factor],
        vec![],
        None,
    );
    Ok(())
}

/// A channel slice layer `from..to` of `x`.
fn slice_layer(cx: &mut Cx, n: &NodeProto, out: &str, x: usize, from: usize, to: usize) {
    let mut shape = cx.shape(x).to_vec();
    shape[0] = to - from;
    cx.layer(
        n,
        out,
        "slice",
        vec![("from", Arg::Int(from as i64)), ("to", Arg::Int(to as i64))],
        vec![x],
        shape,
        vec![],
        None,
    );
}

/// `Slice` of channels (other axes whole) → `slice`.
pub(crate) fn slice(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    let get = |i: usize| -> Result<Option<Vec<i64>>, ImportError> {
        match cx.konst(n, i)? {
            Some(c) => c.ints().map(Some).ok_or_else(|| {
                ImportError::node(n, &format!("input {i} is not a list of integers"))
            }),
            None => Ok(None),
        }
    };
    let starts = get(1)?.ok_or_else(|| ImportError::node(n, "Slice without starts"))?;
    let ends = get(2)?.ok_or_else(|| ImportError::node(n, "Slice without ends"))?;
    let axes = get(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = get(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || ends.len() != starts.len() || steps.len() != starts.len() {
        return Err(ImportError::node(
            n,
            "starts, ends, axes and steps of different lengths",
        ));
    }
    let (mut from, mut to) = (0, shape[0]);
    for (((&s, &e), &a), &st) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
        let axis = sample_axis(n, a, shape.len())?;
        let d = axis.map(|a| shape[a] as i64).unwrap_or(i64::MAX);
        let clamp = |v: i64| if v < 0 { (v + d).max(0) } else { v.min(d) };
        let (s, e) = (clamp(s), clamp(e));
        let whole = s == 0 && e >= d;
        match axis {
            None if whole => {}
            Some(0) if st == 1 && s < e => {
                from = s as usize;
                to = e as usize;
            }
            Some(_) if whole && st == 1 => {}
            _ => {
                return Err(ImportError::node(
                    n,
                    &format!(
                    "Slice on axis {a} ({s}..{e} by {st}); netc slices channels only, by step 1"
                ),
                ))
            }
        }
    }
    slice_layer(cx, n, out, x, from, to);
    Ok(())
}

/// `Split` on channels (PyTorch's `chunk`) → one `slice` per output.
pub(crate) fn split(cx: &mut Cx, n: &NodeProto) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    if sample_axis(n, int_attr(n, "axis", 0), shape.len())? != Some(0) {
        return Err(ImportError::node(
            n,
            "Split on another axis than the channels (1)",
        ));
    }
    let parts = n.output.len();
    let sizes: Vec<i64> = match (cx.konst(n, 1)?, ints_attr(n, "split")) {
        (Some(c), _) => c
            .ints()
            .ok_or_else(|| ImportError::node(n, "split sizes that are not integers"))?,
        (None, Some(s)) => s,
        (None, None) if parts > 0 && shape[0].is_multiple_of(parts) => {
            vec![(shape[0] / parts) as i64; parts]
        }
        _ => {
            return Err(ImportError::node(
                n,
                "Split of channels that do not divide evenly",
            ))
        }
    };
    if sizes.len() != parts
        || sizes.iter().any(|&s| s < 1)
        || sizes.iter().sum::<i64>() != shape[0] as i64
    {
        return Err(ImportError::node(
            n,
            &format!("split sizes {sizes:?} do not cover {} channels", shape[0]),
        ));
    }
    let mut from = 0;
    for (o, &s) in n.output.clone().iter().zip(&sizes) {
        let to = from + s as usize;
        if !o.is_empty() {
            slice_layer(cx, n, o, x, from, to);
        }
        from = to;
    }
    Ok(())
}

/// `ReduceMean` over H and W → `global_avgpool` (and `flatten` without keepdims).
pub(crate) fn reduce_mean(cx: &mut Cx, n: &NodeProto, out: &str) -> Result<(), ImportError> {
    let x = cx.tensor(n, 0)?;
    let shape = cx.shape(x).to_vec();
    let axes = match cx.konst(n, 1)? {
        Some(c) => c.ints().unwrap_or_default(),
        None => ints_attr(n, "axes").unwrap_or_default(),
    };
    let mut per: Vec<Option<usize>> = Vec::new();
    for &a in &axes {
        per.push(sample_axis(n, a, shape.len())?);
    }
    per.sort();
    if shape.len() != 3 || per != [Some(1), Some(2)] {
        return Err(ImportError::node(
            n,
            &format!(
                "ReduceMean over axes {axes:?}; netc averages over H and W only (global_avgpool)"
            ),
        ));
    }
    if int_attr(n, "keepdims", 1) != 0 {
        cx.layer(
            n,
            out,
            "global_avgpool",
            vec![],
            vec![x],
            vec![shape[0], 1, 1],
            vec![],
            None,
        );
    } else {
        let tmp = format!("{out}#pooled");
        let p = cx.layer(
            n,
            &tmp,
            "global_avgpool",
            vec![],
            vec![x],
            vec![shape[0], 1, 1],
            vec![],
            None,
        );
        cx.layer(
            n,
            out,
            "flatten",
            vec![],
            vec![p],
            vec![shape[0]],
            vec![],
            None,
        );
    }
    Ok(())
}
