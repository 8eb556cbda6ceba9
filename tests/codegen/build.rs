//! Emits the generated module of every network the tests compile (the examples and the
//! test networks in `nets/`) into OUT_DIR, with `netc emit`'s code path: each with every
//! codegen pass, with each pass skipped in turn, with all of them skipped, and with every
//! 3×3 stride-1 conv on Winograd (`--conv-algo winograd`); and some of the zoo's networks,
//! on small images, with every pass, with the cost model's algorithms and with Winograd. It
//! also writes the test that compares each module with the interpreter.

use std::path::Path;

use netc_compiler::passes::conv_algo::Pin;
use netc_compiler::Graph;

/// The module declaration of generated `code` written to `OUT_DIR/{file}.rs`, with
/// `WINOGRAD`: whether it calls Winograd convs (the tests' gradient tolerance).
fn module(doc: &str, name: &str, file: &str, code: &str) -> String {
    let winograd = code.contains("rt::conv::winograd::");
    format!(
        "/// {doc}\npub mod {name} {{ include!(concat!(env!(\"OUT_DIR\"), \"/{file}.rs\")); pub const WINOGRAD: bool = {winograd}; }}\n"
    )
}

/// `g` with `--conv-algo` as `pin`.
fn pinned(g: &Graph, pin: Pin) -> Graph {
    let mut g = g.clone();
    g.conv_algo = pin;
    g
}

/// A test network: module name, file, network, and the arguments of its test macro in
/// `tests/equal.rs` after the test and module names.
const NETS: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "lenet",
        "../../examples/lenet.net",
        None,
        r#"equal!("../../examples/lenet.net", 3, [image], [label], [logits: output_logits])"#,
    ),
    (
        "autoencoder",
        "../../examples/autoencoder.net",
        None,
        r#"equal!("../../examples/autoencoder.net", 2, [image], [], [recon: output_recon])"#,
    ),
    (
        "googlenet",
        "../../examples/googlenet.net",
        None,
        r#"equal!("../../examples/googlenet.net", 2, [image], [label], [logits: output_logits])"#,
    ),
    (
        "lecture_naive",
        "../../examples/lecture.net",
        Some("naive"),
        r#"equal_inference!("naive")"#,
    ),
    (
        "lecture_reduced",
        "../../examples/lecture.net",
        Some("reduced"),
        r#"equal_inference!("reduced")"#,
    ),
    (
        "small_inception",
        "../../compiler/tests/fixtures/torch_nets/small_inception.net",
        None,
        r#"equal!("../../compiler/tests/fixtures/torch_nets/small_inception.net", 3, [image], [label], [logits: output_logits])"#,
    ),
    (
        "resnet_mini",
        "../../compiler/tests/fixtures/torch_shapes/resnet_mini.net",
        None,
        r#"equal!("../../compiler/tests/fixtures/torch_shapes/resnet_mini.net", 2, [image], [label], [logits: output_logits])"#,
    ),
    (
        "every_op",
        "nets/every_op.net",
        None,
        r#"equal!("nets/every_op.net", 3, [image, t], [label], [f: output_f])"#,
    ),
    (
        "dropout",
        "nets/dropout.net",
        None,
        r#"equal!("nets/dropout.net", 3, [image], [label], [logits: output_logits])"#,
    ),
];

/// Networks of the zoo on small images (`[3, 224, 224]` made `[3, SIZE, SIZE]`), built with
/// every pass: their inference (every batchnorm folded into its conv) is compared with the
/// interpreter's (`equal_zoo!` in `tests/equal.rs`). With each, its output.
const ZOO: &[(&str, usize, &str)] = &[
    ("resnet18", 32, "logits"),
    ("resnet50", 32, "logits"),
    ("mobilenet_v2", 32, "classifier"),
    ("efficientnet_b0", 32, "classifier"),
];

/// The schedules every network is built with: a module-name suffix, the passes skipped and
/// the conv algorithm asked for. The fusion variants pin im2col, so that they meet the
/// interpreter at the tolerances they always had (issue 15); Winograd everywhere it applies
/// is a variant of its own, with its gradient tolerance (`grad_tol` in `tests/equal.rs`),
/// and the cost model's mix of the two is what the zoo's modules and the random networks
/// (in turn) get.
fn variants() -> Vec<(String, Vec<&'static str>, Pin)> {
    let passes = netc_compiler::passes::names();
    let mut v = vec![
        (String::new(), vec![], Pin::Im2col),
        ("_unfused".into(), passes.clone(), Pin::Im2col),
        ("_winograd".into(), vec![], Pin::Winograd),
        ("_auto".into(), vec![], Pin::Auto),
    ];
    v.extend(
        passes
            .iter()
            .map(|p| (format!("_no_{p}"), vec![*p], Pin::Im2col)),
    );
    v
}

/// How many random networks to generate and compare: sixteen for each of the eleven
/// variants they take turns at. (240 made this crate's library most of CI's test build,
/// which neared the 15 minutes CI allows.)
const RANDOM: usize = 176;

/// A tiny LCG: the networks must be the same on every machine, and build scripts have no
/// dependencies here.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A random network over every op; not necessarily valid (the checker filters).
fn random_net(seed: u64) -> String {
    let mut r = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (c, h, w) = (1 + r.below(4), 5 + r.below(8), 5 + r.below(8));
    let classes = 2 + r.below(5);
    let mut lines = Vec::new();
    let mut convs = Vec::new();
    let mut cur = "image".to_string();
    for i in 0..2 + r.below(4) {
        let ch = 2 + 2 * r.below(3);
        let k = 1 + 2 * r.below(2);
        let stage = match r.below(16) {
            0 | 1 => {
                convs.push(format!("v{i}"));
                format!(
                    "conv({ch}, k={k}, s={}, p={}) as v{i}",
                    1 + r.below(2),
                    k / 2
                )
            }
            2 => format!("conv({ch}, k=3, p=2, dil=2, groups={})", 1 + r.below(2)),
            3 => format!("conv_t({ch}, k={}, s=2, p=1, op=1)", 2 + r.below(2)),
            4 => format!(
                "maxpool(k={}, s=2, p={}, ceil={})",
                2 + r.below(2),
                r.below(2),
                r.below(2) == 0
            ),
            5 => format!(
                "avgpool(k=3, s={}, p=1, ceil={})",
                1 + r.below(2),
                r.below(2) == 0
            ),
            6 => "batchnorm".into(),
            7 => format!("lrn(size={}, alpha=0.3)", 2 + r.below(3)),
            8 => r
                .pick(&[
                    "relu",
                    "sigmoid",
                    "tanh",
                    "leaky_relu(slope=0.2)",
                    "softmax",
                ])
                .into(),
            9 => "dropout(0.3)".into(),
            10 if !convs.is_empty() => format!("invert(of={})", convs[convs.len() - 1]),
            11 => {
                lines.push(format!("    a{i} = {cur} -> conv({ch}, k=1);"));
                lines.push(format!("    b{i} = {cur} -> conv({ch}, k=3, p=1) -> relu;"));
                cur = format!("add(a{i}, b{i})");
                continue;
            }
            // Branches into a concat: convs that may write in place, 1×1 siblings.
            12 => {
                let tail = r.pick(&["", " -> relu", " -> tanh"]);
                let other = r.pick(&[
                    "maxpool(k=3, s=1, p=1)",
                    "conv(3, k=1) -> relu",
                    "conv(2, k=3, p=1)",
                ]);
                lines.push(format!("    a{i} = {cur} -> conv({ch}, k=1){tail};"));
                lines.push(format!("    b{i} = {cur} -> {other};"));
                cur = format!("concat(a{i}, b{i})");
                continue;
            }
            // A small Inception block: three sibling 1×1s, a pool branch, one concat.
            13 => {
                lines.push(format!("    a{i} = {cur} -> conv({ch}, k=1) -> relu;"));
                lines.push(format!(
                    "    b{i} = {cur} -> conv(2, k=1) -> relu -> conv({ch}, k=3, p=1) -> relu;"
                ));
                lines.push(format!(
                    "    c{i} = {cur} -> conv(3, k=1) -> conv(2, k=3, p=1);"
                ));
                lines.push(format!(
                    "    e{i} = {cur} -> maxpool(k=3, s=1, p=1) -> conv(2, k=1) -> relu;"
                ));
                cur = format!("concat(a{i}, b{i}, c{i}, e{i})");
                continue;
            }
            _ => format!("conv({ch}, k={k}, p={}) -> relu", k / 2),
        };
        lines.push(format!("    x{i} = {cur} -> {stage};"));
        cur = format!("x{i}");
    }
    let aux = if r.below(2) == 0 {
        format!("    aux = {cur} -> global_avgpool -> flatten -> linear({classes});\n")
    } else {
        String::new()
    };
    let loss = if aux.is_empty() {
        "".to_string()
    } else {
        " + 0.4 * ce(aux, label)".to_string()
    };
    format!(
        "network r{seed}(image: [{c}, {h}, {w}], label: class({classes})) {{\n{}\n{aux}    logits = {cur} -> flatten -> linear({classes});\n    loss ce(logits, label){loss};\n    output logits;\n}}\n",
        lines.join("\n")
    )
}

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let variants = variants();
    // Random networks that check: their modules, and one test each.
    let (mut modules, mut tests) = (String::new(), String::new());
    let (mut seed, mut made) = (0u64, 0);
    while made < RANDOM {
        seed += 1;
        let src = random_net(seed);
        let checked =
            netc_compiler::check_source("random.net", &src, Path::new("random.net"), None);
        if checked.has_errors() {
            continue;
        }
        let name = format!("r{seed}");
        // The networks take turns at the schedules: every one meets the interpreter.
        let (_, skip, pin) = &variants[made % variants.len()];
        let g = pinned(&checked.graphs[0], *pin);
        let code = netc_compiler::codegen::emit_with(&g, &name, skip).expect("emit");
        modules.push_str(&module(
            &format!("Random network {seed}."),
            &name,
            &name,
            &code,
        ));
        std::fs::write(Path::new(&out).join(format!("{name}.rs")), code).expect("write");
        std::fs::write(Path::new(&out).join(format!("{name}.net")), &src).expect("write");
        tests.push_str(&format!("equal_random!({name});\n"));
        made += 1;
    }
    std::fs::write(Path::new(&out).join("random_modules.rs"), modules).expect("write");
    std::fs::write(Path::new(&out).join("random_tests.rs"), tests).expect("write");

    let (mut modules, mut tests) = (String::new(), String::new());
    for (name, path, network, test) in NETS {
        println!("cargo:rerun-if-changed={path}");
        let checked = netc_compiler::check_file(Path::new(path), *network);
        assert!(!checked.has_errors(), "{path}:\n{}", checked.render());
        let fused = netc_compiler::codegen::emit(&pinned(&checked.graphs[0], Pin::Im2col), path)
            .expect("emit");
        for (suffix, skip, pin) in &variants {
            let module = format!("{name}{suffix}");
            let g = pinned(&checked.graphs[0], *pin);
            let code = netc_compiler::codegen::emit_with(&g, path, skip).expect("emit");
            let doc = format!("`{path}`, skipping the passes {skip:?}, convs {pin:?}.");
            // A schedule that changes nothing is the same module (and compiles once).
            if !suffix.is_empty() && code == fused {
                modules.push_str(&format!(
                    "/// {doc} Same code as `{name}`.\npub use {name} as {module};\n"
                ));
            } else {
                modules.push_str(&self::module(&doc, &module, &module, &code));
                std::fs::write(Path::new(&out).join(format!("{module}.rs")), code).expect("write");
            }
            let call = test.replacen(
                '(',
                &format!("({module}_equals_the_interpreter, {module}, "),
                1,
            );
            tests.push_str(&format!("{call};\n"));
        }
    }
    std::fs::write(Path::new(&out).join("example_modules.rs"), modules).expect("write");
    std::fs::write(Path::new(&out).join("example_tests.rs"), tests).expect("write");

    let (mut modules, mut tests) = (String::new(), String::new());
    for (name, size, output) in ZOO {
        let path = format!("../../examples/zoo/{name}.net");
        println!("cargo:rerun-if-changed={path}");
        let src = std::fs::read_to_string(&path)
            .expect("read")
            .replace("[3, 224, 224]", &format!("[3, {size}, {size}]"));
        let small = Path::new(&out).join(format!("{name}.net"));
        std::fs::write(&small, &src).expect("write");
        let checked = netc_compiler::check_file(&small, None);
        assert!(!checked.has_errors(), "{path}:\n{}", checked.render());
        for (suffix, pin) in [("", Pin::Auto), ("_winograd", Pin::Winograd)] {
            let g = pinned(&checked.graphs[0], pin);
            let code = netc_compiler::codegen::emit(&g, &path).expect("emit");
            let module = format!("{name}{suffix}");
            let doc = format!("`{path}` on {size}×{size} images, convs {pin:?}.");
            modules.push_str(&self::module(&doc, &module, &module, &code));
            std::fs::write(Path::new(&out).join(format!("{module}.rs")), code).expect("write");
            std::fs::write(Path::new(&out).join(format!("{module}.net")), &src).expect("write");
            tests.push_str(&format!(
                "equal_zoo!({module}, {output}, output_{output});\n"
            ));
        }
    }
    std::fs::write(Path::new(&out).join("zoo_modules.rs"), modules).expect("write");
    std::fs::write(Path::new(&out).join("zoo_tests.rs"), tests).expect("write");
}
