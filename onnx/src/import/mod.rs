//! `netc import`: an ONNX model made of the language's ops becomes a `.net` file and its
//! weights. The pipeline, top to bottom: [`graph`] reads the model and its constants,
//! [`lower`] maps nodes (and known patterns of nodes) to layers, [`emit`] groups the layers by
//! module path into chains, bindings and block instances, [`blocks`] merges instances that
//! read alike into `block`s, and this file prints the text.

mod act;
mod blocks;
mod channels_last;
mod emit;
mod graph;
mod lower;
mod named;
mod names;
mod norms;
mod ops;
mod pools;
mod tensor_ops;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_channels_last;
#[cfg(test)]
mod tests_patterns;

use std::collections::HashSet;

use crate::proto::NodeProto;

/// An imported network.
#[derive(Debug)]
pub struct Imported {
    /// The `.net` source.
    pub net: String,
    /// The weights under the paths the source gives its layers: name, dims, f32 values.
    pub weights: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// What the reader should know: names changed, layers that are not in the model.
    pub notes: Vec<String>,
}

/// Why a model cannot be imported.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportError {
    pub message: String,
}

impl ImportError {
    pub(crate) fn new(message: String) -> ImportError {
        ImportError { message }
    }

    /// An error about node `n`, naming it and its op.
    pub(crate) fn node(n: &NodeProto, why: &str) -> ImportError {
        let name = if n.name().is_empty() {
            "(unnamed)"
        } else {
            n.name()
        };
        ImportError::new(format!("node `{name}` ({}): {why}", n.op_type()))
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportError {}

/// Imports the ONNX model in `bytes` as network `name` (made an identifier if it is not).
/// `reserved`: the names a block may not take, the language's ops and losses (the
/// compiler's registry has them; this crate does not depend on the compiler).
pub fn import(bytes: &[u8], name: &str, reserved: &[&str]) -> Result<Imported, ImportError> {
    let model = graph::read(bytes)?;
    let lowered = lower::lower(&model)?;
    if lowered.layers.is_empty() {
        return Err(ImportError::new("the graph has no layers".into()));
    }
    let mut e = emit::emit(&lowered, reserved);
    let net_name = names::sanitize(name);
    let mut reserved: HashSet<String> = HashSet::new();
    reserved.insert(net_name.clone());
    e.blocks.finish(&reserved);
    let net = print(&e, &net_name, &lowered, name);
    let mut notes = lowered.notes.clone();
    notes.append(&mut e.notes);
    if net_name != name {
        notes.insert(0, format!("the network is named `{net_name}`"));
    }
    Ok(Imported {
        net,
        weights: e.weights,
        notes,
    })
}

/// Wraps a statement at ` -> ` to lines of at most 100 characters.
fn wrap(indent: &str, text: &str, comment: Option<String>) -> String {
    let mut out = String::new();
    let mut line = indent.to_string();
    for (k, piece) in text.split(" -> ").enumerate() {
        let add = if k == 0 {
            piece.to_string()
        } else {
            format!(" -> {piece}")
        };
        if k > 0 && line.len() + add.len() > 100 {
            out.push_str(&line);
            out.push('\n');
            line = format!("{indent}    ->{}", &add[3..]);
        } else {
            line.push_str(&add);
        }
    }
    if let Some(c) = comment {
        if line.len() + c.len() < 110 {
            line.push_str("   ");
            line.push_str(&c);
        }
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn shape_text(s: &[usize]) -> String {
    format!("[{}]", ops::dims(s))
}

/// The whole file.
fn print(e: &emit::Emitted, net_name: &str, lo: &lower::Lowered, name: &str) -> String {
    let params: usize = e
        .weights
        .iter()
        .filter(|(n, ..)| !n.ends_with(".running_mean") && !n.ends_with(".running_var"))
        .map(|(_, _, d)| d.len())
        .sum();
    let mut out = format!(
        "// {name}, imported from ONNX by `netc import`: {} layers, {} parameters.\n",
        lo.layers.len(),
        group(params)
    );
    if !e.notes.is_empty() {
        out.push_str("// See the notes `netc import` printed about names.\n");
    }
    if !lo.notes.is_empty() {
        out.push_str(
            "// See the notes `netc import` printed about weights that differ from PyTorch's.\n",
        );
    }
    if e.fillers > 0 {
        out.push_str("// `dropout(0.0)` stands for a layer the model does not have (a dropout, the identity at\n// inference, which ONNX leaves out), so that the layers after it keep their positions,\n// their paths and their weights' names.\n");
    }
    for t in 0..e.blocks.templates.len() {
        let (head, lines) = e.blocks.definition(t);
        let n = e.blocks.count(t);
        out.push_str(&format!(
            "\n// {} instance{}.\n{head} {{\n",
            n,
            if n == 1 { "" } else { "s" }
        ));
        for l in lines {
            out.push_str(&wrap("    ", &l, None));
        }
        out.push_str("}\n");
    }
    let inputs: Vec<String> = e
        .inputs
        .iter()
        .map(|(n, s)| format!("{}: {}", names::write_ident(n), shape_text(s)))
        .collect();
    out.push_str(&format!(
        "\nnetwork {}({}) {{\n",
        names::write_ident(net_name),
        inputs.join(", ")
    ));
    for (stmt, v) in &e.top {
        let text = e.blocks.literal_text(stmt);
        out.push_str(&wrap(
            "    ",
            &text,
            v.map(|v| format!("// {}", shape_text(&lo.shapes[v]))),
        ));
    }
    out.push_str(&format!("    output {};\n}}\n", e.outputs.join(", ")));
    out
}

/// `1234567` as `1,234,567`.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
