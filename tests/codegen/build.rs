//! Emits the generated module of every network the tests compile (the examples and the
//! test networks in `nets/`) into OUT_DIR, with `netc emit`'s code path.

use std::path::Path;

const NETS: &[(&str, &str)] = &[
    ("lenet", "../../examples/lenet.net"),
    ("autoencoder", "../../examples/autoencoder.net"),
    ("googlenet", "../../examples/googlenet.net"),
    (
        "small_inception",
        "../../compiler/tests/fixtures/torch_nets/small_inception.net",
    ),
    ("every_op", "nets/every_op.net"),
];

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (name, path) in NETS {
        println!("cargo:rerun-if-changed={path}");
        let checked = netc_compiler::check_file(Path::new(path), None);
        assert!(!checked.has_errors(), "{path}:\n{}", checked.render());
        let code = netc_compiler::codegen::emit(&checked.graphs[0], path).expect("emit");
        std::fs::write(Path::new(&out).join(format!("{name}.rs")), code).expect("write");
    }
}
