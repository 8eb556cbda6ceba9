//! Rendering diagnostics over hostile text (issue 12): lines longer than miette can pad,
//! spans anywhere (past the end, inside a character, reversed), old Mac line endings,
//! control characters, and thousands of diagnostics in one file.

use std::time::{Duration, Instant};

use netc_dsl::diag::render_all;
use netc_dsl::{Diagnostic, SourceMap, Span};

/// `text` as `t.net`, and `d` (given that file's id) rendered over it without colour.
fn render(text: &str, d: impl FnOnce(netc_dsl::FileId) -> Diagnostic) -> String {
    let mut sources = SourceMap::new();
    let f = sources.add("t.net", text);
    d(f).render(&sources)
}

#[test]
fn error_past_column_65535_is_clipped_with_its_real_column() {
    let text = format!("{}y = x -> relu output y;\n", " ".repeat(70_000));
    let at = text.find("output").unwrap();
    let out = render(&text, |f| {
        Diagnostic::error("parse", "found keyword `output`")
            .label(Span::new(f, at, at + 6), "unexpected here")
    });
    assert_eq!(
        out,
        "netc::parse

  × found keyword `output`
   ╭─[t.net:1:70015]
 1 │ …                          y = x -> relu output y;
   ·                                          ───┬──
   ·                                             ╰── unexpected here
   ╰────
"
    );
}

#[test]
fn a_span_longer_than_the_window_is_underlined_to_its_edge() {
    // A chain of 30,000 stages on one line, labelled whole.
    let text = format!("y = x{};\n", " -> relu".repeat(30_000));
    let out = render(&text, |f| {
        Diagnostic::error("op", "too long").label(Span::new(f, 4, text.len() - 2), "this")
    });
    assert_eq!(
        out,
        "netc::op

  × too long
   ╭─[t.net:1:5]
 1 │ y = x -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu -> relu ->…
   ·     ──────────────────────────────────────────────────────────┬──────────────────────────────────────────────────────────
   ·                                                               ╰── this
   ╰────
"
    );
}

#[test]
fn clipping_keeps_characters_whole() {
    // A label amid two-, three- and four-byte characters, or tabs: the window holds 40
    // characters before it and 120 in all, each whole.
    for fill in ["é", "中", "🦀", "\t"] {
        let text = format!("{}bad{}\n", fill.repeat(30_000), fill.repeat(30_000));
        let at = text.find("bad").unwrap();
        let out = render(&text, |f| {
            Diagnostic::error("x", "bad").label(Span::new(f, at, at + 3), "here")
        });
        let line = if fill == "\t" {
            // miette expands tabs to stops every 4 columns; the `…` takes the first one.
            format!(
                " 1 │ …{}bad{}…",
                " ".repeat(3 + 39 * 4),
                " ".repeat(1 + 76 * 4)
            )
        } else {
            format!(" 1 │ …{}bad{}…", fill.repeat(40), fill.repeat(120 - 40 - 3))
        };
        assert!(out.contains("[t.net:1:30001]"), "{out}");
        assert!(out.contains(&line), "{fill:?}:\n{out}");
    }
}

#[test]
fn a_label_outside_the_window_becomes_a_note() {
    let text = format!("y = x -> relu;{}y = x -> tanh;\n", " ".repeat(100_000));
    let second = text.rfind('y').unwrap();
    let out = render(&text, |f| {
        Diagnostic::error("duplicate", "`y` is defined twice")
            .label(Span::new(f, second, second + 1), "defined again here")
            .label(Span::new(f, 0, 1), "first defined here")
    });
    assert_eq!(
        out,
        "netc::duplicate

  × `y` is defined twice
   ╭─[t.net:1:100015]
 1 │ …                                        y = x -> tanh;
   ·                                          ┬
   ·                                          ╰── defined again here
   ╰────
  help: note: t.net:1:1: first defined here
"
    );
}

#[test]
fn labels_far_apart_are_shown_apart() {
    let text: String = (0..400).map(|i| format!("y{i} = x;\n")).collect();
    let line = |l: usize| text.find(&format!("y{l} =")).unwrap();
    let out = render(&text, |f| {
        Diagnostic::error("duplicate", "defined twice")
            .label(Span::new(f, line(390), line(390) + 4), "again")
            .label(Span::new(f, line(200), line(200) + 4), "first")
    });
    assert_eq!(
        out,
        "netc::duplicate

  × defined twice
     ╭─[t.net:201:1]
 200 │ y199 = x;
 201 │ y200 = x;
     · ──┬─
     ·   ╰── first
 202 │ y201 = x;
     ╰────
     ╭─[t.net:391:1]
 390 │ y389 = x;
 391 │ y390 = x;
     · ──┬─
     ·   ╰── again
 392 │ y391 = x;
     ╰────
"
    );
}

#[test]
fn lone_carriage_returns_end_lines_in_header_and_snippet() {
    let text = "a = x;\rb = y;\rc = bad;\rd = z;\r";
    let at = text.find("bad").unwrap();
    let out = render(text, |f| {
        Diagnostic::error("x", "bad").label(Span::new(f, at, at + 3), "here")
    });
    assert_eq!(
        out,
        "netc::x

  × bad
   ╭─[t.net:3:5]
 2 │ b = y;
 3 │ c = bad;
   ·     ─┬─
   ·      ╰── here
 4 │ d = z;
   ╰────
"
    );
}

#[test]
fn control_characters_are_shown_not_sent_to_the_terminal() {
    let text = "y = \x1b[31mx\0 -> relu;\n";
    let at = text.find('\0').unwrap();
    let out = render(text, |f| {
        Diagnostic::error("parse", "unexpected NUL byte").label(Span::new(f, at, at + 1), "here")
    });
    assert_eq!(
        out,
        "netc::parse

  × unexpected NUL byte
   ╭─[t.net:1:11]
 1 │ y = ␛[31mx␀ -> relu;
   ·           ┬
   ·           ╰── here
   ╰────
"
    );
}

/// Every span renders, whatever its offsets, in any text: no panic, a header, the message.
#[test]
fn any_span_renders() {
    let long_line = format!("{}é\u{200b}x\n", " ".repeat(70_000));
    let texts = [
        "",
        "\n",
        "\r",
        "\r\n",
        "a\r\nb\rc\n",
        "é中🦀",
        "\0\0\0",
        long_line.as_str(),
    ];
    for text in texts {
        let n = text.len();
        let mut offsets: Vec<usize> = (0..=n.min(40)).collect();
        offsets.extend([n.saturating_sub(5), n.saturating_sub(1), n, n + 1, n + 100]);
        offsets.extend((n.saturating_sub(40)..n).filter(|o| *o > 40));
        for &start in &offsets {
            for &end in &[start, start + 1, start + 3, 0, n, n + 7] {
                let out = render(text, |f| {
                    Diagnostic::error("x", "msg")
                        .label(Span::new(f, start, end), "one")
                        .label(Span::new(f, end, start), "")
                        .label(Span::new(f, 0, n), "all")
                });
                assert!(
                    out.contains("× msg") && out.contains("[t.net:"),
                    "{text:?} {start}..{end}:\n{out}"
                );
            }
        }
    }
}

#[test]
fn a_span_in_an_unknown_file_renders_as_a_note() {
    let out = render("x", |_| {
        Diagnostic::error("x", "msg").label(Span::new(netc_dsl::FileId(7), 0, 1), "here")
    });
    assert_eq!(out, "netc::x\n\n  × msg\n  help: note: here\n");
}

/// One diagnostic per line of a 20,000-line file. Reading the file from its start for each
/// one took minutes; with the line index each costs the same wherever it is. The bound is
/// some ten times what this takes in a debug build, far below the quadratic time.
#[test]
fn twenty_thousand_diagnostics_render_in_linear_time() {
    const N: usize = 20_000;
    let mut sources = SourceMap::new();
    let text: String = (0..N).map(|i| format!("    y{i} = x -> relu;\n")).collect();
    let f = sources.add("t.net", text.as_str());
    let mut diags = Vec::with_capacity(N);
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        let at = start + 4;
        let d = if i % 2 == 0 {
            Diagnostic::error("x", "bad")
        } else {
            Diagnostic::warning("x", "unused")
        };
        diags.push(d.label(Span::new(f, at, at + 2), "here"));
        start += line.len() + 1;
    }
    let clock = Instant::now();
    let out = render_all(&diags, &sources, false);
    let took = clock.elapsed();
    assert!(
        out.contains("[t.net:20000:5]"),
        "{}",
        &out[out.len() - 300..]
    );
    assert_eq!(out.matches("╭─[").count(), N);
    assert!(
        took < Duration::from_secs(15),
        "{N} diagnostics took {took:?}"
    );
}
