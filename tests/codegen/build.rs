//! Emits the generated module of every network the tests compile (the examples and the
//! test networks in `nets/`) into OUT_DIR, with `netc emit`'s code path.

use std::path::Path;

const NETS: &[(&str, &str, Option<&str>)] = &[
    ("lenet", "../../examples/lenet.net", None),
    ("autoencoder", "../../examples/autoencoder.net", None),
    ("googlenet", "../../examples/googlenet.net", None),
    ("lecture_naive", "../../examples/lecture.net", Some("naive")),
    (
        "lecture_reduced",
        "../../examples/lecture.net",
        Some("reduced"),
    ),
    (
        "small_inception",
        "../../compiler/tests/fixtures/torch_nets/small_inception.net",
        None,
    ),
    ("every_op", "nets/every_op.net", None),
];

/// How many random networks to generate and compare.
const RANDOM: usize = 240;

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
            12 => {
                lines.push(format!("    a{i} = {cur} -> conv({ch}, k=1) -> tanh;"));
                lines.push(format!("    b{i} = {cur} -> maxpool(k=3, s=1, p=1);"));
                cur = format!("concat(a{i}, b{i})");
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
        // Every other network skips the epilogue pass: both schedules meet the interpreter.
        let skip: &[&str] = if made % 2 == 0 { &[] } else { &["epilogue"] };
        let code =
            netc_compiler::codegen::emit_with(&checked.graphs[0], &name, skip).expect("emit");
        std::fs::write(Path::new(&out).join(format!("{name}.rs")), code).expect("write");
        std::fs::write(Path::new(&out).join(format!("{name}.net")), &src).expect("write");
        modules.push_str(&format!(
            "/// Random network {seed}.\npub mod {name} {{ include!(concat!(env!(\"OUT_DIR\"), \"/{name}.rs\")); }}\n"
        ));
        tests.push_str(&format!("equal_random!({name});\n"));
        made += 1;
    }
    std::fs::write(Path::new(&out).join("random_modules.rs"), modules).expect("write");
    std::fs::write(Path::new(&out).join("random_tests.rs"), tests).expect("write");

    for (name, path, network) in NETS {
        println!("cargo:rerun-if-changed={path}");
        let checked = netc_compiler::check_file(Path::new(path), *network);
        assert!(!checked.has_errors(), "{path}:\n{}", checked.render());
        let code = netc_compiler::codegen::emit(&checked.graphs[0], path).expect("emit");
        std::fs::write(Path::new(&out).join(format!("{name}.rs")), code).expect("write");
        // The same network with every optional pass skipped.
        let code = netc_compiler::codegen::emit_with(&checked.graphs[0], path, &["epilogue"])
            .expect("emit");
        std::fs::write(Path::new(&out).join(format!("{name}_unfused.rs")), code).expect("write");
    }
}
