//! Compile-fail tests of `network!` and `include_net!`: each kind of mistake is a compile error
//! at the token that caused it (for a file, naming its line and column), as the `.stderr`
//! beside each case shows. `TRYBUILD=overwrite cargo test --test ui` rewrites them.

#[test]
fn mistakes_are_compile_errors_at_the_offending_token() {
    // trybuild builds the cases in a crate of its own; paths stay relative to this one.
    std::env::set_var("NETC_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
