//! The modules `include_net!` and `network!` expand to against the modules `netc emit` writes
//! for the same networks: equal parameters and inputs give bitwise equal outputs, losses,
//! gradients and batchnorm statistics (the macros, like `netc emit`, let the cost model choose
//! each conv's algorithm: they are compared with the `_auto` modules), and the macros' `Net`
//! describes the network as the trainer binary's does.

use netc_codegen_tests as t;
use netc_runtime::rng::Rng;

/// Runs an emitted module and an inline one on the same seeded parameters and batch, and
/// asserts every result is bitwise equal.
macro_rules! same {
    ($test:ident, $emitted:path, $inline:path, $batch:expr, [$($input:ident: $len:expr),*], [$($label:ident: $classes:expr),*], $out:ident) => {
        #[test]
        fn $test() {
            use $emitted as a;
            use $inline as b;
            assert_eq!(a::Params::SHAPES, b::Params::SHAPES);
            assert_eq!(a::State::SHAPES, b::State::SHAPES);
            let mut rng = Rng::new(3);
            let (mut pa, mut pb) = (a::Params::new(), b::Params::new());
            for (name, _) in a::Params::SHAPES {
                let v: Vec<f32> = pa.get(name).unwrap().iter().map(|_| rng.uniform(-0.2, 0.2)).collect();
                pa.get_mut(name).unwrap().copy_from_slice(&v);
                pb.get_mut(name).unwrap().copy_from_slice(&v);
            }
            let (mut sa, mut sb) = (a::State::new(), b::State::new());
            $(
                let $input: Vec<f32> = (0..$batch * $len).map(|_| rng.uniform(0.0, 1.0)).collect();
            )*
            $(
                let $label: Vec<i64> = (0..$batch).map(|_| rng.below($classes) as i64).collect();
            )*
            let xa = a::Inputs { $($input: &$input,)* $($label: &$label,)* };
            let xb = b::Inputs { $($input: &$input,)* $($label: &$label,)* };
            let (mut wa, mut wb) = (a::Workspace::new($batch), b::Workspace::new($batch));
            a::forward(&pa, &sa, &mut wa, &xa);
            b::forward(&pb, &sb, &mut wb, &xb);
            assert_eq!(a::$out(&wa), b::$out(&wb), "inference output");
            let (la, lb) = (a::forward_train(&pa, &mut sa, &mut wa, &xa), b::forward_train(&pb, &mut sb, &mut wb, &xb));
            assert_eq!(la.to_bits(), lb.to_bits(), "loss {la} against {lb}");
            assert!(la.is_finite());
            let (mut ga, mut gb) = (a::Grads::new(), b::Grads::new());
            a::backward(&pa, &mut ga, &mut wa);
            b::backward(&pb, &mut gb, &mut wb);
            for (name, _) in a::Params::SHAPES {
                assert_eq!(ga.get(name).unwrap(), gb.get(name).unwrap(), "gradient of {name}");
            }
            assert!(ga.get(a::Params::SHAPES[0].0).unwrap().iter().any(|&v| v != 0.0));
            for (name, _) in a::State::SHAPES {
                assert_eq!(sa.get(name).unwrap(), sb.get(name).unwrap(), "{name}");
            }
        }
    };
}

same!(lenet_by_include_net, t::lenet_auto, t::inline::lenet, 4, [image: 784], [label: 10], output_logits);
same!(lenet_by_network_macro, t::lenet_auto, t::inline::text::lenet, 4, [image: 784], [label: 10], output_logits);
same!(autoencoder_by_include_net, t::autoencoder_auto, t::inline::autoencoder, 3, [image: 784], [], output_recon);
same!(googlenet_by_include_net, t::googlenet_auto, t::inline::googlenet, 2, [image: 3 * 224 * 224], [label: 1000], output_logits);

/// The macros' `Net` is the trainer's view of the network: the same name, input, classes,
/// parameters and defaults as the `netc train` binary gets.
#[test]
fn the_inline_net_is_the_trainer_network() {
    use netc::train::Network;
    type N = t::inline::text::lenet::Net;
    assert_eq!(N::NAME, "lenet");
    assert_eq!(N::INPUT, [1, 28, 28]);
    assert_eq!(N::CLASSES, 10);
    assert_eq!(N::SHAPES, t::lenet::Params::SHAPES);
    assert_eq!((N::DEFAULTS.epochs, N::DEFAULTS.batch), (5, 64));
    // The hash that checkpoints carry is the network's, whichever macro built it.
    assert_eq!(N::HASH, <t::inline::lenet::Net as Network>::HASH);
    assert_eq!(<t::inline::autoencoder::Net as Network>::CLASSES, 0);
}

/// Parameters iterate by path, in `SHAPES` order, mutably too.
#[test]
fn parameters_iterate_by_path() {
    use t::inline::text::lenet as m;
    let mut p = m::Params::new();
    for (k, (name, t)) in p.iter_mut().enumerate() {
        t.fill(k as f32);
        assert_eq!(name, m::Params::SHAPES[k].0);
    }
    let got: Vec<(&str, usize, f32)> = p.iter().map(|(n, t)| (n, t.len(), t[0])).collect();
    let want: Vec<(&str, usize, f32)> = m::Params::SHAPES
        .iter()
        .enumerate()
        .map(|(k, (n, s))| (*n, s.iter().product(), k as f32))
        .collect();
    assert_eq!(got, want);
    assert_eq!(m::State::new().iter().count(), 0);
}

/// A network and an input named after Rust keywords are raw identifiers, and run.
#[test]
fn rust_keywords_are_raw_identifiers() {
    use t::inline::keywords::r#type as m;
    let mut p = m::Params::new();
    p.get_mut("logits.1.weight").unwrap().fill(0.5);
    let images = vec![1.0f32; 16];
    let mut ws = m::Workspace::new(1);
    m::forward(
        &p,
        &m::State::new(),
        &mut ws,
        &m::Inputs {
            r#fn: &images,
            label: &[],
        },
    );
    assert_eq!(m::output_logits(&ws), [8.0, 8.0]);
    assert_eq!(m::NAME, "type");
}

/// `macro_rules!` arguments, doc comments and the trainer's choice of output (see
/// `inline::from_macro_rules`).
#[test]
fn macro_rules_arguments_doc_comments_and_the_scored_head() {
    use netc::train::Network;
    use t::inline::from_macro_rules::heads as m;
    assert_eq!(
        m::Params::SHAPES[0],
        ("features.0.weight", &[6usize, 1, 1, 1][..])
    );
    let mut p = m::Params::new();
    for (k, (_, t)) in p.iter_mut().enumerate() {
        t.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = ((i + k) % 5) as f32 / 10.0 - 0.2);
    }
    let images = vec![0.5f32; 16];
    let mut ws = m::Sharded::new(1);
    <m::Net as Network>::forward(&p, &m::State::new(), &mut ws, &images);
    assert_eq!(<m::Net as Network>::logits(&ws), ws.output_main());
    assert_ne!(ws.output_main(), ws.output_aux());
    let _ = t::inline::from_macro_rules::flat::Net;
}
