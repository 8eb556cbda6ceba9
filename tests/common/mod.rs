//! What the command-line tests share: running `netc` as a user does, and reading its output.

use std::process::{Command, Output};

/// `netc ARGS` from the repository's root, without colours.
pub fn netc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("netc runs")
}

/// Output bytes as text.
#[allow(dead_code)] // not every test file reads output as text
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
