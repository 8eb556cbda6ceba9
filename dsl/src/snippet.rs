//! The part of a source file a diagnostic shows. Given the whole file, miette scans it from
//! its first byte for every label (rendering thousands of diagnostics took minutes), and it
//! pads columns with `format!` widths that panic past 65,535. So each diagnostic hands miette
//! an [`Excerpt`]: only the lines around its labels, found through the file's line index;
//! long lines clipped to a window around the label, on char boundaries; control characters
//! shown as visible symbols; and the header's `line:col` computed here from the real file.
//! For ordinary lines the excerpt holds exactly the file's text, so the rendering is the one
//! miette gives for the whole file.

use std::collections::HashMap;

use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::span::{ceil_char_boundary, floor_char_boundary, SourceFile};

/// Lines of at most this many bytes are shown whole. Real code stays far below; the bound
/// keeps every column miette draws (at most 4 per byte, for a tab) below 65,535.
const LONG_LINE: usize = 4096;
/// A longer line is clipped to this many characters before the point it is shown for...
const CLIP_BEFORE: usize = 40;
/// ...and this many characters in all.
const CLIP_WIDTH: usize = 120;
/// Marks a clipped side of a line.
const ELLIPSIS: &str = "…";
/// Labels more than this many lines apart go in separate excerpts, so miette shows them in
/// separate snippets. Closer ones keep miette's own choice, which may join them into one
/// snippet with every line between; far apart, that would print a large part of the file.
const MAX_GAP: usize = 100;
/// The lines miette shows before and after a label (its default), which an excerpt holds.
const CONTEXT: usize = 1;

/// A label to show: a byte range of the file, its text, and whether it is the primary one.
pub(crate) struct Mark<'a> {
    pub start: usize,
    pub end: usize,
    pub message: &'a str,
    pub primary: bool,
}

/// The excerpt and the labels in its coordinates. `hidden` lists the marks (by index) that
/// fell outside the window of a clipped line; the caller reports them as notes.
pub(crate) struct Shown {
    pub source: Excerpt,
    pub labels: Vec<LabeledSpan>,
    pub hidden: Vec<usize>,
}

/// What miette reads instead of the file: one part per group of nearby labels. Each part
/// has its own range of offsets, with a gap between parts, so that miette cannot join two
/// parts into one snippet (reading a span across the gap fails, and it shows them apart).
pub(crate) struct Excerpt {
    name: String,
    parts: Vec<Part>,
    /// For each shown label's start (an excerpt offset), its 0-based line and column (in
    /// characters) in the file, for the header.
    heads: HashMap<usize, (usize, usize)>,
}

struct Part {
    /// The excerpt offset of `text`'s first byte.
    base: usize,
    /// The file line `text` starts with (0-based).
    first_line: usize,
    text: String,
}

/// One file line as the excerpt shows it: `window` (a byte range of the file) with control
/// characters replaced, behind an ellipsis where clipped.
struct LineView {
    window: (usize, usize),
    /// Where the line's text ends in the file, before its line break.
    content_end: usize,
    /// The excerpt offsets where the line starts, where the window's text starts and ends,
    /// and where the shown line ends (after a closing ellipsis).
    at_line: usize,
    at_text: usize,
    at_text_end: usize,
    at_end: usize,
    /// The length of the line's break: `\r\n` is kept, a lone `\r` shown as `\n` (a line
    /// break to miette too), so offsets in it map one to one.
    break_len: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Start,
    End,
}

/// The excerpt of `file` for `marks`, with the marks placed in it.
pub(crate) fn show(file: &SourceFile, marks: &[Mark]) -> Shown {
    let text = file.text.as_str();
    let lines = file.lines();
    // Clamp into the text, onto char boundaries, end not before start: any span renders.
    let spans: Vec<(usize, usize)> = marks
        .iter()
        .map(|m| {
            let start = floor_char_boundary(text, m.start.min(text.len()));
            let end = ceil_char_boundary(text, m.end.min(text.len()).max(start));
            (start, end)
        })
        .collect();
    let line_of = |o: usize| lines.line_of(o);

    // Where each line is clipped around, if it is long: the primary label's start, else the
    // first label that starts on it, else the first that ends on it.
    let mut order: Vec<usize> = (0..marks.len()).collect();
    order.sort_by_key(|&i| (!marks[i].primary, spans[i].0));
    let mut anchor: HashMap<usize, usize> = HashMap::new();
    for &i in &order {
        anchor.entry(line_of(spans[i].0)).or_insert(spans[i].0);
    }
    for &i in &order {
        anchor.entry(line_of(spans[i].1)).or_insert(spans[i].1);
    }

    // Groups of labels whose lines are at most MAX_GAP apart, in file order.
    order.sort_by_key(|&i| spans[i]);
    let mut groups: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for &i in &order {
        let (first, last) = (line_of(spans[i].0), line_of(spans[i].1));
        match groups.last_mut() {
            Some((_, end, members)) if first <= *end + MAX_GAP => {
                *end = (*end).max(last);
                members.push(i);
            }
            _ => groups.push((first, last, vec![i])),
        }
    }

    let mut excerpt = Excerpt {
        name: file.name.clone(),
        parts: Vec::new(),
        heads: HashMap::new(),
    };
    let mut placed: Vec<Option<(usize, usize)>> = vec![None; marks.len()];
    let mut base = 0;
    for (first, last, members) in groups {
        let first = first.saturating_sub(CONTEXT);
        let last = (last + CONTEXT).min(lines.count() - 1);
        let (part, views) = lay_out(file, first..=last, &anchor, base);
        for &i in &members {
            let (start, end) = spans[i];
            let view = |o: usize| &views[line_of(o) - first];
            if let Some(s) = view(start).place(text, start, Side::Start) {
                let e = view(end).place(text, end, Side::End).unwrap_or(s).max(s);
                placed[i] = Some((s, e));
                let (line, col) = lines.line_col(text, start);
                excerpt.heads.insert(s, (line, col));
            }
        }
        // A gap of one offset: an empty span at the end of this part is not in the next.
        let next = base + part.len() + 1;
        excerpt.parts.push(Part {
            base,
            first_line: first,
            text: part,
        });
        base = next;
    }

    let mut labels = Vec::new();
    let mut hidden = Vec::new();
    for (i, m) in marks.iter().enumerate() {
        let Some((s, e)) = placed[i] else {
            hidden.push(i);
            continue;
        };
        let msg = (!m.message.is_empty()).then(|| m.message.to_string());
        let span = SourceSpan::new(s.into(), e - s);
        labels.push(if m.primary {
            LabeledSpan::new_primary_with_span(msg, span)
        } else {
            LabeledSpan::new_with_span(msg, span)
        });
    }
    Shown {
        source: excerpt,
        labels,
        hidden,
    }
}

/// The excerpt text of file `lines` starting at excerpt offset `base`, and where each line
/// went: long lines clipped around their `anchor`, control characters replaced.
fn lay_out(
    file: &SourceFile,
    lines: std::ops::RangeInclusive<usize>,
    anchor: &HashMap<usize, usize>,
    base: usize,
) -> (String, Vec<LineView>) {
    let (text, index) = (file.text.as_str(), file.lines());
    let mut part = String::new();
    let mut views = Vec::new();
    for line in lines {
        let start = index.start(line);
        let content_end = index.content_end(text, line);
        let window = if content_end - start <= LONG_LINE {
            (start, content_end)
        } else {
            let at = anchor.get(&line).copied().unwrap_or(start);
            clip(text, start, content_end, at.clamp(start, content_end))
        };
        let at_line = base + part.len();
        if window.0 > start {
            part.push_str(ELLIPSIS);
        }
        let at_text = base + part.len();
        push_shown(&mut part, &text[window.0..window.1]);
        let at_text_end = base + part.len();
        if window.1 < content_end {
            part.push_str(ELLIPSIS);
        }
        let at_end = base + part.len();
        let line_break = match index.next_start(line) {
            Some(next) if &text[content_end..next] == "\r\n" => "\r\n",
            Some(_) => "\n",
            None => "",
        };
        part.push_str(line_break);
        views.push(LineView {
            window,
            content_end,
            at_line,
            at_text,
            at_text_end,
            at_end,
            break_len: line_break.len(),
        });
    }
    (part, views)
}

impl LineView {
    /// The excerpt offset of file offset `o` on this line (a char boundary). A label cannot
    /// start outside the window; an end there goes to the window's edge.
    fn place(&self, text: &str, o: usize, side: Side) -> Option<usize> {
        let (ws, we) = self.window;
        if o < ws {
            return (side == Side::End).then_some(self.at_line);
        }
        if o <= we {
            return Some(self.at_text + shown_len(&text[ws..o]));
        }
        if we < self.content_end {
            return (side == Side::End).then_some(self.at_end);
        }
        Some(self.at_text_end + (o - self.content_end).min(self.break_len))
    }
}

/// The window of a long line shown for `at`: up to CLIP_BEFORE characters before it, up to
/// CLIP_WIDTH in all, on char boundaries.
fn clip(text: &str, start: usize, end: usize, at: usize) -> (usize, usize) {
    let at = floor_char_boundary(text, at);
    let from = text[start..at]
        .char_indices()
        .rev()
        .take(CLIP_BEFORE)
        .last()
        .map_or(at, |(i, _)| start + i);
    let to = text[from..end]
        .char_indices()
        .nth(CLIP_WIDTH)
        .map_or(end, |(i, _)| from + i);
    (from, to)
}

/// How a character is shown in a snippet. Control characters would act on the terminal
/// (or vanish) instead of being seen, and bidirectional overrides would reorder the line
/// around them; they are shown as symbols. miette expands tabs itself.
fn shown_char(c: char) -> char {
    match c {
        '\t' => c,
        '\0'..='\x1f' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\x7f' => '\u{2421}',
        '\u{80}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => '\u{fffd}',
        _ => c,
    }
}

fn push_shown(out: &mut String, text: &str) {
    out.extend(text.chars().map(shown_char));
}

fn shown_len(text: &str) -> usize {
    text.chars().map(|c| shown_char(c).len_utf8()).sum()
}

impl SourceCode for Excerpt {
    /// miette's own reading of the part that holds `span`, with its lines numbered as in the
    /// file and, for a label's own position (no context lines), the file's column.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let k = self.parts.partition_point(|p| p.base <= span.offset());
        let part = k
            .checked_sub(1)
            .map(|k| &self.parts[k])
            .ok_or(MietteError::OutOfBounds)?;
        let local = span.offset() - part.base;
        if local + span.len() > part.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let inner = part.text.as_str().read_span(
            &SourceSpan::new(local.into(), span.len()),
            context_lines_before,
            context_lines_after,
        )?;
        let mut line = inner.line() + part.first_line;
        let mut column = inner.column();
        if context_lines_before == 0 && context_lines_after == 0 {
            if let Some(&head) = self.heads.get(&span.offset()) {
                (line, column) = head;
            }
        }
        let covered = SourceSpan::new(
            (inner.span().offset() + part.base).into(),
            inner.span().len(),
        );
        // miette counts `line_count` from the start of what it reads; from the file's start
        // here, so that it joins snippets exactly as it would reading the whole file.
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            covered,
            line,
            column,
            inner.line_count() + part.first_line,
        )))
    }
}
