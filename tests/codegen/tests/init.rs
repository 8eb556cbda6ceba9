//! Fresh parameters of generated code: `Params::new()` gives every tensor its op's constant
//! (a layer scale its `init`, a norm's γ 1, biases and β 0) and `Params::drawn` says which
//! the initialization scheme draws, exactly as the compiler's declarations say, which the
//! interpreter's `init_params` follows too. (The trainer used to decide by name: a weight
//! of two or more dimensions was drawn, so a layer scale's `[C, 1, 1]` factor was drawn by
//! He or Xavier instead of starting at its `init`.)

use std::path::Path;

use netc::train::Network;
use netc_compiler::ops::Init;

const SRC: &str = "network sc(x: [2, 4, 4], label: class(3)) {
    y = x -> conv(2, k=1) -> batchnorm -> scale(init=0.5) -> layernorm2d -> global_avgpool
          -> flatten -> linear(3);
    loss ce(y, label);
    output y;
}";

netc::network! {
    network sc(x: [2, 4, 4], label: class(3)) {
        y = x -> conv(2, k=1) -> batchnorm -> scale(init=0.5) -> layernorm2d -> global_avgpool
              -> flatten -> linear(3);
        loss ce(y, label);
        output y;
    }
}

#[test]
fn fresh_parameters_are_their_ops_constants_and_the_drawn_weights() {
    let checked = netc_compiler::check_source("sc.net", SRC, Path::new("sc.net"), None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let decls = netc_compiler::interp::param_decls(&checked.graphs[0]);
    let trained: Vec<_> = decls.iter().filter(|(_, d)| !d.state).collect();
    assert_eq!(trained.len(), sc::Params::SHAPES.len());
    let fresh = sc::Params::new();
    for ((name, d), (shape_name, _)) in trained.iter().map(|(n, d)| (n, d)).zip(sc::Params::SHAPES)
    {
        assert_eq!(name.as_str(), *shape_name);
        assert_eq!(sc::Params::drawn(name), d.init == Init::Random, "{name}");
        assert_eq!(<sc::Net as Network>::drawn(name), sc::Params::drawn(name));
        if let Init::Const(v) = d.init {
            assert!(
                fresh.get(name).unwrap().iter().all(|&x| x == v),
                "{name} starts at {v}"
            );
        }
    }
    assert!(fresh.get("y.2.weight").unwrap().iter().all(|&x| x == 0.5));
    // Only the conv's and the linear layer's weights are drawn.
    let drawn: Vec<&str> = sc::Params::SHAPES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| sc::Params::drawn(n))
        .collect();
    assert_eq!(drawn, ["y.0.weight", "y.6.weight"]);
}
