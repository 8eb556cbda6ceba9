//! Module paths and identifiers. PyTorch's exporter names a node by its module scopes
//! (`/layer1/layer1.0/conv1/Conv`) and an initializer by its `state_dict` name
//! (`layer1.0.conv1.weight`); netc's export names a node by its layer path. Both become a
//! list of path segments, which the text rebuilds with bindings, `as` and block calls.

/// The language's keywords, written raw (`r#block`) where they are names.
const KEYWORDS: &[&str] = &[
    "network", "block", "const", "use", "return", "loss", "output", "train", "as", "class", "true",
    "false",
];

/// Names that cannot be written even raw.
const RESERVED: &[&str] = &["_", "self", "Self", "super", "crate"];

/// Whether `s` is one segment of a dotted path: letters, digits and `_`.
fn segment(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a dotted path whose every segment is valid.
fn dotted(s: &str) -> Option<Vec<String>> {
    let parts: Vec<String> = s.split('.').map(str::to_string).collect();
    parts.iter().all(|p| segment(p)).then_some(parts)
}

/// The module of a weight from its initializer's name (`layer1.0.conv1.weight` →
/// `layer1.0.conv1`); `None` for names that are not a `state_dict` path (`onnx::Conv_7`).
pub(crate) fn param_module(name: &str) -> Option<Vec<String>> {
    let (module, _) = name.rsplit_once('.')?;
    dotted(module)
}

/// The module a node belongs to, from its name: PyTorch's scopes (each scope's name either
/// extends the one before, `layer1` then `layer1.0`, or is relative to it, `conv1`), or a
/// netc layer path, or nothing (the network's top level).
pub(crate) fn node_module(name: &str) -> Vec<String> {
    if !name.contains('/') {
        return dotted(name)
            .filter(|p| p.len() > 1 || name.contains('.'))
            .unwrap_or_default();
    }
    let scopes: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    let Some((_, scopes)) = scopes.split_last() else {
        return Vec::new();
    };
    let mut path: Vec<String> = Vec::new();
    // Where the previous scope's segments start, and its text.
    let mut prev: Option<(usize, &str)> = None;
    for s in scopes {
        let Some(parts) = dotted(s) else {
            return Vec::new();
        };
        let start = match prev {
            Some((at, text)) if s.starts_with(&format!("{text}.")) => at,
            _ => path.len(),
        };
        path.truncate(start);
        path.extend(parts);
        prev = Some((start, s));
    }
    path
}

/// The module of node `n`: [`node_module`] of its name, or, for a name of one segment that
/// is also the name of its output (netc's export names a layer's node and its value by the
/// layer's path: `logits`, `i3a`), that segment.
pub(crate) fn node_path(n: &crate::proto::NodeProto) -> Vec<String> {
    let name = n.name();
    let path = node_module(name);
    if path.is_empty() && segment(name) && n.output.first().map(String::as_str) == Some(name) {
        return vec![name.to_string()];
    }
    path
}

/// Whether `s` is an identifier of the language (a keyword counts: it is written raw).
pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&s)
}

/// `s` as the text names it: raw when a keyword.
pub(crate) fn write_ident(s: &str) -> String {
    if KEYWORDS.contains(&s) {
        format!("r#{s}")
    } else {
        s.to_string()
    }
}

/// An identifier made from any text: invalid characters become `_`, a leading digit gets
/// one before it.
pub(crate) fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        || RESERVED.contains(&out.as_str())
    {
        out.insert(0, '_');
    }
    if out == "_" {
        out.push('x');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pytorch_scopes_become_module_paths() {
        assert_eq!(
            node_module("/layer1/layer1.0/conv1/Conv"),
            p(&["layer1", "0", "conv1"])
        );
        assert_eq!(
            node_module("/layer2/layer2.0/downsample/downsample.0/Conv"),
            p(&["layer2", "0", "downsample", "0"])
        );
        assert_eq!(
            node_module("/features/features.0/features.0.0/Conv"),
            p(&["features", "0", "0"])
        );
        assert_eq!(node_module("/GlobalAveragePool"), Vec::<String>::new());
        assert_eq!(node_module("layer1.0.conv1"), p(&["layer1", "0", "conv1"]));
        assert_eq!(node_module("Conv_0"), Vec::<String>::new());
        assert_eq!(
            param_module("layer1.0.bn1.running_mean"),
            Some(p(&["layer1", "0", "bn1"]))
        );
        assert_eq!(param_module("onnx::Conv_12"), None);
    }

    #[test]
    fn identifiers_are_checked_and_made() {
        assert!(is_ident("conv1") && is_ident("_x") && !is_ident("0") && !is_ident("a-b"));
        assert_eq!(write_ident("block"), "r#block");
        assert_eq!(sanitize("0"), "_0");
        assert_eq!(sanitize("a-b.c"), "a_b_c");
    }
}
