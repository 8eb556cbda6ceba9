//! The registry walk: every op of the language (`ops::all()`) and every loss is in the
//! language reference, in the PyTorch builder of the whole-network fixtures
//! (`bench/torch_from_json.py`), in the random-network fuzzer (`fuzz.rs`) and in the every-op
//! network of the generated-code tests. An op added to the registry and forgotten in one of
//! them fails here, with the place to add it.

use std::path::Path;

use netc_compiler::ops::{self, LOSSES};

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether `text` has `word` with no identifier character on either side.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Every name of the registry and the losses, and where each must appear.
#[test]
fn every_op_and_loss_is_documented_fixtured_fuzzed_and_in_the_every_op_network() {
    let places = [
        (
            "docs/language.md",
            "a heading naming it (`### `NAME``)",
            read("docs/language.md"),
        ),
        (
            "bench/torch_from_json.py",
            "a branch building it in PyTorch (`op == \"NAME\"`)",
            read("bench/torch_from_json.py"),
        ),
        (
            "compiler/tests/fuzz.rs",
            "a stage of the random networks (`stage()`) or a loss term",
            read("compiler/tests/fuzz.rs"),
        ),
        (
            "tests/codegen/nets/every_op.net",
            "a layer or loss term using it",
            read("tests/codegen/nets/every_op.net"),
        ),
    ];
    let names: Vec<&str> = ops::all()
        .iter()
        .map(|s| s.name)
        .chain(LOSSES.iter().copied())
        .collect();
    let mut missing = Vec::new();
    for name in &names {
        for (path, what, text) in &places {
            let found = match *path {
                "docs/language.md" => text
                    .lines()
                    .any(|l| l.starts_with("### ") && l.contains(&format!("`{name}`"))),
                "bench/torch_from_json.py" => text.contains(&format!("\"{name}\"")),
                _ => has_word(text, name),
            };
            if !found {
                missing.push(format!(
                    "`{name}` is missing from {path}: add {}",
                    what.replace("NAME", name)
                ));
            }
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

/// The walk itself can fail: a name that is nowhere is reported in every place.
#[test]
fn a_name_that_is_nowhere_is_found_missing() {
    assert!(!has_word("relu6 -> relu", "relu6x"));
    assert!(has_word("x -> relu6 -> relu", "relu"));
    assert!(!has_word("x -> relu6", "relu"));
    assert!(has_word("mul(a, b)", "mul"));
}
