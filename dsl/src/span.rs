//! Where things are: source files by id, and byte spans into them. Every AST node, graph
//! node and diagnostic carries a [`Span`], so errors found in any phase point at the text.

/// Which loaded file a span belongs to (an index into a [`SourceMap`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range `start..end` in one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span that covers both (which must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// A source text and the name it is shown under in diagnostics.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    lines: LineIndex,
}

impl SourceFile {
    /// Where the text's lines start, for turning byte offsets into lines and columns.
    pub(crate) fn lines(&self) -> &LineIndex {
        &self.lines
    }
}

/// All files loaded for one compilation: the root file and those it `use`s.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        self.files.push(SourceFile {
            name: name.into(),
            lines: LineIndex::new(&text),
            text,
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The file, if `id` names one of this map's files.
    pub fn try_get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// The text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// 1-based line and column (in characters) of a span's start. `\n`, `\r\n` and a lone
    /// `\r` each end a line, as in the snippets diagnostics show.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let file = self.get(span.file);
        let (line, col) = file.lines.line_col(&file.text, span.start as usize);
        (line + 1, col + 1)
    }

    /// `file:line:col` of a span's start.
    pub fn location(&self, span: Span) -> String {
        let (line, col) = self.line_col(span);
        format!("{}:{}:{}", self.get(span.file).name, line, col)
    }
}

/// Every line's start, found once per file, so that the line of a byte offset is a binary
/// search rather than a scan from the top: rendering one diagnostic costs the same on line
/// 10 as on line 100,000, and many diagnostics render in linear time.
#[derive(Clone, Debug, Default)]
pub(crate) struct LineIndex {
    /// Byte offset of each line's first byte; `starts[0] == 0`. A line break (`\n`, `\r\n`
    /// or a lone `\r`) belongs to the line it ends.
    starts: Vec<usize>,
    /// `chars_before[k]`: how many characters precede byte `k * CHUNK`, so that a column in
    /// characters costs at most `CHUNK` steps even on a line megabytes long.
    chars_before: Vec<usize>,
}

const CHUNK: usize = 256;

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            // In `\r\n` the line ends after the `\n`.
            if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
                starts.push(i + 1);
            }
        }
        let mut chars_before = Vec::with_capacity(bytes.len() / CHUNK + 1);
        let mut n = 0;
        for chunk in bytes.chunks(CHUNK) {
            chars_before.push(n);
            n += chunk.iter().filter(|&&b| !is_continuation(b)).count();
        }
        chars_before.push(n);
        LineIndex {
            starts,
            chars_before,
        }
    }

    /// How many lines the text has (an empty text, or one ending in a line break, ends with
    /// an empty line).
    pub(crate) fn count(&self) -> usize {
        self.starts.len()
    }

    /// The 0-based line holding byte `offset` (the last line for offsets past the end).
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// Where 0-based `line` starts.
    pub(crate) fn start(&self, line: usize) -> usize {
        self.starts[line]
    }

    /// Where the line after `line` starts, if there is one.
    pub(crate) fn next_start(&self, line: usize) -> Option<usize> {
        self.starts.get(line + 1).copied()
    }

    /// Where `line`'s text ends, before its line break.
    pub(crate) fn content_end(&self, text: &str, line: usize) -> usize {
        match self.starts.get(line + 1) {
            None => text.len(),
            Some(&next) if next >= 2 && &text.as_bytes()[next - 2..next] == b"\r\n" => next - 2,
            Some(&next) => next - 1,
        }
    }

    /// How many characters precede byte `offset` (which must be a char boundary).
    fn char_index(&self, text: &str, offset: usize) -> usize {
        let k = offset / CHUNK;
        let rest = &text.as_bytes()[k * CHUNK..offset];
        self.chars_before[k] + rest.iter().filter(|&&b| !is_continuation(b)).count()
    }

    /// 0-based line and column (in characters) of byte `offset`, clamped into the text. A line
    /// break is one column, even `\r\n`.
    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.line_of(offset);
        let offset = offset.min(self.content_end(text, line));
        let col = self.char_index(text, offset) - self.char_index(text, self.start(line));
        (line, col)
    }
}

/// A UTF-8 byte that continues a character rather than starting one.
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The char boundary at or before `i` (which must be at most `text.len()`).
pub(crate) fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The char boundary at or after `i` (which must be at most `text.len()`).
pub(crate) fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_col(text: &str, offset: usize) -> (usize, usize) {
        let mut sources = SourceMap::new();
        let f = sources.add("t.net", text);
        sources.line_col(Span::new(f, offset, offset))
    }

    #[test]
    fn every_line_break_counts_once() {
        let text = "a\nb\r\nc\rd";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (2, 1));
        assert_eq!(line_col(text, 3), (2, 2)); // the `\r` of `\r\n`
        assert_eq!(line_col(text, 4), (2, 2)); // its `\n`: one break, one column
        assert_eq!(line_col(text, 5), (3, 1));
        assert_eq!(line_col(text, 7), (4, 1));
        assert_eq!(line_col(text, 8), (4, 2)); // end of file
        assert_eq!(line_col(text, 99), (4, 2)); // past it
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("a\n", 2), (2, 1));
    }

    #[test]
    fn columns_count_characters_on_long_lines() {
        // Past several CHUNKs of two-byte characters, and inside one (floored to its start).
        let text = format!("x\n{}y", "é".repeat(1000));
        let y = text.len() - 1;
        assert_eq!(line_col(&text, y), (2, 1001));
        assert_eq!(line_col(&text, y - 1), (2, 1000));
        assert_eq!(line_col(&text, 3), (2, 1));
    }

    #[test]
    fn line_content_excludes_its_break() {
        let text = "ab\r\ncd\ref\n";
        let lines = LineIndex::new(text);
        assert_eq!(lines.count(), 4);
        let ends: Vec<_> = (0..4).map(|l| lines.content_end(text, l)).collect();
        assert_eq!(ends, [2, 6, 9, 10]);
    }
}
