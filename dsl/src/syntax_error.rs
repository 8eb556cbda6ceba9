//! Syntax errors in prose. pest reports the rules and literal tokens it tried at the
//! farthest point it reached; this module turns them into "expected `;`, `->` or `as`, found
//! keyword `output`", points at the whole offending word, and adds a hint for the usual
//! slips (`3x3`, `#` comments, keywords as names, a missing `;`).

use crate::ast::KEYWORDS;
use crate::diag::Diagnostic;
use crate::parse::Rule;
use crate::span::{FileId, Span};

/// Turns pest's error into prose: what was expected at the farthest point the parser
/// reached, and the token it found there.
pub(crate) fn from_pest(file: FileId, text: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};

    let err_pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut pos = err_pos;
    let mut expected: Vec<String> = Vec::new();
    if let Some(attempts) = err.parse_attempts() {
        if attempts.max_position >= pos {
            pos = attempts.max_position;
            // Characters that would only continue the word before `pos` (`x` in
            // `n(x)`) are not what the user missed, nor is a word that would start there.
            let continues_word = text[..pos.min(text.len())]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            for t in attempts.expected_tokens() {
                // `ParsingToken` is not exported; its Display is the literal token.
                let t = t.to_string();
                let word = t.contains("..") || t == "_" || t == "r#";
                if word && continues_word {
                    continue;
                }
                if let Some(p) = token_prose(&t) {
                    expected.push(p);
                }
            }
        }
    }
    // pest's positives are the rules tried at its own error position, which may lie before
    // the farthest point reached; they only describe that point when the two agree.
    if pos == err_pos {
        if let ErrorVariant::ParsingError { positives, .. } = &err.variant {
            for r in positives {
                if let Some(p) = rule_prose(*r) {
                    expected.push(p.to_string());
                }
            }
        }
    }
    expected.sort();
    expected.dedup();
    // Prose for a rule subsumes the keywords and punctuation it starts with.
    if expected.iter().any(|e| e == "a value") {
        expected.retain(|e| {
            !matches!(
                e.as_str(),
                "`(`"
                    | "`[`"
                    | "`-`"
                    | "a number"
                    | "a name"
                    | "a string"
                    | "`true`"
                    | "`false`"
                    | "a name or a call"
            )
        });
    }
    if expected
        .iter()
        .any(|e| e == "an op or block" || e == "a name or a call")
    {
        expected.retain(|e| e != "a name");
    }

    if let Some(c) = text.get(pos..).and_then(|r| r.chars().next()) {
        if is_stray(c) {
            return stray(file, pos, c);
        }
    }

    // Show the whole word an error lands inside (`3x3`, not `x3`).
    let word_start = text[..pos.min(text.len())]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(pos, |(i, _)| i);
    let (found, found_span) = found_token(file, text, word_start);
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let mut d = Diagnostic::error("parse", message).label(found_span, "unexpected here");
    if let Some(h) = hint(text, pos, &expected) {
        d = d.help(h);
    }
    d
}

/// Whether `c` can stand outside comments and strings: the language is printable ASCII,
/// spaces, tabs and line breaks.
fn is_stray(c: char) -> bool {
    !(c.is_ascii_graphic() || matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// A character no token is made of (a NUL byte, a control character, anything outside
/// ASCII) is the mistake itself, even right after a word (`x\0`, `3×3`): it is reported
/// where it stands, escaped when it is invisible, rather than as the word before it.
fn stray(file: FileId, pos: usize, c: char) -> Diagnostic {
    let span = Span::new(file, pos, pos + c.len_utf8());
    let shown = if c.is_control() || c.is_whitespace() {
        format!("\\u{{{:x}}}", c as u32)
    } else {
        c.escape_debug().to_string()
    };
    let (message, help) = if c == '\0' {
        (
            "unexpected NUL byte".to_string(),
            "the file looks binary (or UTF-16); a `.net` file is UTF-8 text",
        )
    } else if c.is_control() {
        (
            format!("unexpected control character `{shown}`"),
            "control characters may only stand in comments and strings",
        )
    } else {
        let code = if shown.starts_with('\\') {
            String::new()
        } else {
            format!(" (U+{:04X})", c as u32)
        };
        (
            format!("unexpected character `{shown}`{code}"),
            "outside comments and strings, a `.net` file is ASCII",
        )
    };
    Diagnostic::error("parse", message)
        .label(span, "unexpected here")
        .help(help)
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The token at `pos` as the user wrote it, and its span.
pub(crate) fn found_token(file: FileId, text: &str, pos: usize) -> (String, Span) {
    let pos = pos.min(text.len());
    let rest = &text[pos..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".to_string(), Span::new(file, pos, pos));
    };
    let word = |s: &str| {
        s.find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '.'))
            .unwrap_or(s.len())
    };
    let raw = rest
        .strip_prefix("r#")
        .filter(|r| r.starts_with(|ch: char| ch.is_alphanumeric() || ch == '_'));
    let len = if let Some(r) = raw {
        2 + word(r)
    } else if c.is_alphanumeric() || c == '_' {
        word(rest)
    } else if rest.starts_with("->") || rest.starts_with("//") || rest.starts_with("/*") {
        2
    } else {
        c.len_utf8()
    };
    let tok = &rest[..len];
    let shown = if KEYWORDS.contains(&tok) {
        format!("keyword `{tok}`")
    } else {
        format!("`{tok}`")
    };
    (shown, Span::new(file, pos, pos + len))
}

fn hint(text: &str, pos: usize, expected: &[String]) -> Option<String> {
    let pos = pos.min(text.len());
    // The whole word around the error: in `k=3x3` pest stops after the `3`.
    let start = text[..pos]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(pos, |(i, _)| i);
    let start = if text[start..].starts_with(|c: char| c.is_ascii_digit()) {
        start
    } else {
        pos
    };
    let rest = &text[start..];
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let bytes = word.as_bytes();
    let literal =
        rest.starts_with(['[', '"', '-', '(']) || bytes.first().is_some_and(u8::is_ascii_digit);
    if literal && expected.iter().any(|e| e == "a name or a call") && !word.contains('x') {
        return Some(
            "a binding names layers: `y = x -> relu;`; numbers and lists go in a `const`"
                .to_string(),
        );
    }
    if !word.is_empty() && bytes[0].is_ascii_digit() {
        if let Some((a, b)) = word.split_once('x') {
            if a.chars().all(|c| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit()) {
                return Some(format!(
                    "`{word}` is not a token: the language is made of Rust tokens; write `k={a}` or `k=[{a}, {b}]`"
                ));
            }
        }
        if word.chars().any(|c| c.is_alphabetic()) {
            return Some("a name cannot start with a digit".to_string());
        }
    }
    if rest.starts_with('#') {
        return Some("comments are `// ...` or `/* ... */`".to_string());
    }
    let before = text[..pos].trim_end();
    let prev_word = &before[before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8())..];
    if rest.starts_with('=') && KEYWORDS.contains(&prev_word) {
        return Some(keyword_as_name(prev_word));
    }
    // A keyword where a name was tried (`as block;`): pest stops at its end, expecting
    // nothing. Followed by a word, a string or a brace, it is rather a misplaced item.
    let after = text[pos..].trim_start();
    if expected.is_empty()
        && before.len() == pos
        && KEYWORDS.contains(&prev_word)
        && !after.starts_with(|c: char| c.is_alphanumeric() || matches!(c, '_' | '"' | '{'))
    {
        return Some(keyword_as_name(prev_word));
    }
    if KEYWORDS.contains(&word.as_str()) && expected.iter().any(|e| e.contains("name")) {
        return Some(keyword_as_name(&word));
    }
    if expected.iter().any(|e| e == "`return`") {
        return Some("a block ends with `return VALUE;`".to_string());
    }
    if expected.iter().any(|e| e == "`;`") {
        return Some("is a `;` missing before this?".to_string());
    }
    None
}

fn keyword_as_name(word: &str) -> String {
    format!("`{word}` is a keyword; to use it as a name, write the raw identifier `r#{word}`")
}

/// Literal tokens as prose; whitespace and comment openers are never what the user missed.
fn token_prose(token: &str) -> Option<String> {
    const NOISE: &[&str] = &[
        "\u{feff}", " ", "\t", "\r", "\n", "//", "/*", "*/", "\"", "\\", "_", ".", "e", "E",
    ];
    match token {
        "0..9" => return Some("a number".to_string()),
        // `r#` begins a raw identifier, which is a name too.
        "A..Z" | "a..z" | "r#" => return Some("a name".to_string()),
        _ => {}
    }
    if NOISE.contains(&token) || token.contains("..") || token.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!("`{token}`"))
}

fn rule_prose(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident => "a name",
        Rule::number | Rule::int | Rule::float => "a number",
        Rule::string => "a string",
        Rule::boolean => "`true` or `false`",
        Rule::expr | Rule::product | Rule::unary | Rule::shape => "a value",
        // The right side of a binding: layers, not numbers.
        Rule::chain | Rule::head => "a name or a call",
        Rule::call => "a call",
        Rule::stage => "an op or block",
        Rule::arg | Rule::arg_name => "an argument",
        Rule::param => "a parameter",
        Rule::bind => "a binding `name = ...;`",
        Rule::kw_use => "`use`",
        Rule::kw_const => "`const`",
        Rule::kw_block => "`block`",
        Rule::kw_return => "`return`",
        Rule::kw_network => "`network`",
        Rule::kw_class => "`class`",
        Rule::kw_loss => "`loss`",
        Rule::kw_output => "`output`",
        Rule::kw_train => "`train`",
        Rule::kw_as => "`as`",
        Rule::EOI => "end of file",
        Rule::train_entry => "a setting `name = value;`",
        _ => return None,
    })
}
