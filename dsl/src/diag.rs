//! Diagnostics: every user mistake, in any phase, is one of these, never a panic. They are
//! plain data (message, labelled spans, a hint) until rendered with the source text through
//! miette's graphical handler: `file:line:col`, the offending line, an underline, the hint.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};

use crate::snippet::{self, Excerpt, Mark};
use crate::span::{SourceMap, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// A message attached to a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One error or warning. The first label is the primary one: its file is the one shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable kebab-case name for the kind of mistake, shown as `netc::CODE`.
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    /// Extra lines, such as where a name in another file was defined.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(self, help: Option<String>) -> Diagnostic {
        match help {
            Some(h) => self.help(h),
            None => self,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }

    /// Renders with source context, without colour (stable for snapshots and logs).
    pub fn render(&self, sources: &SourceMap) -> String {
        self.render_with(sources, false)
    }

    /// Renders with source context; `color` for a terminal.
    pub fn render_with(&self, sources: &SourceMap, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let report = Report::new(self, sources);
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            // Rendering into a String cannot fail in practice; fall back to one line.
            out = self.to_string();
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

/// Renders a list of diagnostics, separated by blank lines.
pub fn render_all(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.render_with(sources, color));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The diagnostic as miette sees it: an excerpt of the primary file as source, labels in
/// other files (or outside a clipped line's window) as notes.
struct Report {
    code: String,
    message: String,
    severity: miette::Severity,
    source: Option<Excerpt>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl Report {
    fn new(d: &Diagnostic, sources: &SourceMap) -> Report {
        let primary = d
            .labels
            .first()
            .and_then(|l| sources.try_get(l.span.file).map(|f| (l.span.file, f)));
        let mut notes = d.notes.clone();
        let mut marks = Vec::new();
        let mut in_primary = Vec::new();
        for (i, l) in d.labels.iter().enumerate() {
            if primary.is_some_and(|(id, _)| id == l.span.file) {
                marks.push(Mark {
                    start: l.span.start as usize,
                    end: l.span.end as usize,
                    message: &l.message,
                    primary: i == 0,
                });
                in_primary.push(l);
            } else {
                notes.push(note(sources, l));
            }
        }
        let (source, labels) = match primary {
            Some((_, file)) => {
                let shown = snippet::show(file, &marks);
                notes.extend(shown.hidden.iter().map(|&i| note(sources, in_primary[i])));
                (Some(shown.source), shown.labels)
            }
            None => (None, Vec::new()),
        };
        let mut help = d.help.clone();
        if !notes.is_empty() {
            let mut text = help.map(|h| format!("{h}\n")).unwrap_or_default();
            text.push_str(
                &notes
                    .iter()
                    .map(|n| format!("note: {n}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            help = Some(text);
        }
        Report {
            code: format!("netc::{}", d.code),
            message: d.message.clone(),
            severity: match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            source,
            labels,
            help,
        }
    }
}

/// A label that is not drawn in the snippet, as a note: `file:line:col: message`.
fn note(sources: &SourceMap, l: &Label) -> String {
    if sources.try_get(l.span.file).is_none() {
        return l.message.clone();
    }
    format!("{}: {}", sources.location(l.span), l.message)
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// Edit distance counting insertions, deletions, substitutions and swaps of adjacent
/// characters (optimal string alignment), for "did you mean" hints: `stme` is one edit
/// from `stem`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The candidate nearest to `name`, if it is near enough to be a likely typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    if len < 3 {
        return None; // every short name is near every other
    }
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, c)| d <= limit && c != name)
        .min()
        .map(|(_, c)| c)
}

/// `did you mean `x`?` when a near candidate exists, spelled as source writes it (`r#block`).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest(name, candidates).map(|c| format!("did you mean `{}`?", crate::ast::source_name(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("conv", "conv"), 0);
        assert_eq!(edit_distance("convv", "conv"), 1);
        assert_eq!(edit_distance("maxpol", "maxpool"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("relu", "lrn"), 4);
        assert_eq!(edit_distance("stme", "stem"), 1);
    }

    #[test]
    fn nearest_picks_close_names_only() {
        let ops = ["conv", "conv_t", "maxpool", "avgpool", "relu"];
        assert_eq!(nearest("convv", ops), Some("conv"));
        assert_eq!(nearest("maxpol", ops), Some("maxpool"));
        assert_eq!(nearest("softplus", ops), None);
    }

    #[test]
    fn renders_file_line_col_and_underline() {
        let mut sources = SourceMap::new();
        let f = sources.add("x.net", "network n(x: [1]) {\n  y = x -> convv;\n}\n");
        let d = Diagnostic::error("unknown-op", "unknown op `convv`")
            .label(Span::new(f, 31, 36), "not an op or block")
            .help("did you mean `conv`?");
        let text = d.render(&sources);
        assert!(text.contains("x.net:2:12"), "{text}");
        assert!(text.contains("──┬──"), "{text}");
        assert!(text.contains("did you mean `conv`?"), "{text}");
    }
}
