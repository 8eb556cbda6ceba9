//! Issue 12 item 4: `netc emit` held the whole module as one token tree and one `syn::File`
//! (about 220 KB per convolution, 7 GB at 38,000), and printed it at once. Its peak memory
//! now follows the text it writes. Alone in its test binary, so that the process's peak
//! memory is this test's.

/// The peak resident memory of this process so far, in bytes (`VmHWM`).
#[cfg(target_os = "linux")]
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn emitting_1000_convs_takes_memory_in_proportion_to_the_text() {
    let convs = vec!["conv(4, k=3, p=1)"; 1000].join(" -> ");
    let src = format!(
        "network chain(x: [4, 8, 8]) {{\n    y = x -> {convs};\n    loss mse(y, x);\n    output y;\n}}\n"
    );
    let path = std::path::Path::new("chain.net");
    let checked = netc_compiler::check_source("chain.net", &src, path, None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let before = peak_rss();
    let text = netc_compiler::codegen::emit(&checked.graphs[0], "chain.net").unwrap();
    let grown = peak_rss().saturating_sub(before);
    // The text is 2.5 MB (3.1 MB before each layer's geometry became one constant). As one
    // syntax tree, the module took 215 MB more at the peak (69 times the text); printed item
    // by item, about 19 MB.
    assert!(text.len() > 2_000_000, "{}", text.len());
    assert!(
        grown < 10 * text.len() as u64,
        "emitting {} bytes of text took {grown} bytes more at the peak",
        text.len()
    );
}
