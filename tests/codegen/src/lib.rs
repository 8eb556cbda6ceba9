//! The generated modules of the examples and test networks, compiled as part of the
//! workspace (with warnings denied), for `tests/equal.rs` to run against the interpreter.

#![deny(warnings)]

/// The examples and test networks, once per schedule (see `build.rs`): `lenet` with every
/// pass, `lenet_unfused` with none, `lenet_no_epilogue` without `epilogue`, ...
mod examples {
    include!(concat!(env!("OUT_DIR"), "/example_modules.rs"));
}
pub use examples::*;

/// Random networks of every op (see `build.rs`), each compared with the interpreter.
pub mod random {
    include!(concat!(env!("OUT_DIR"), "/random_modules.rs"));
}

/// Networks through the macros, for `tests/inline.rs` to compare with the emitted modules
/// above: the examples by `include_net!`, and LeNet's text inside `network!`.
pub mod inline {
    netc::include_net!("../../examples/lenet.net");
    netc::include_net!("../../examples/autoencoder.net");
    netc::include_net!("../../examples/googlenet.net");

    /// Names that are Rust keywords become raw identifiers: module `r#type`, input `r#fn`.
    pub mod keywords {
        netc::network! {
            network type(fn: [1, 4, 4], label: class(2)) {
                logits = fn -> flatten -> linear(2);
                loss ce(logits, label);
                output logits;
            }
        }
    }

    /// `examples/lenet.net`'s text, inline (module `lenet` inside `text`).
    pub mod text {
        netc::network! {
            // LeNet-5, as in examples/lenet.net.
            const classes = 10;

            network lenet(image: [1, 28, 28], label: class(classes)) {
                c1 = image -> conv(6, k=5, p=2) -> relu -> maxpool(k=2);    // 6×14×14
                c3 = c1 -> conv(16, k=5) -> relu -> maxpool(k=2);           // 16×5×5
                f5 = c3 -> flatten -> linear(120) -> relu;
                f6 = f5 -> linear(84) -> relu;
                logits = f6 -> linear(classes);

                loss ce(logits, label);
                output logits;

                train {
                    optimizer = sgd(lr=0.05, momentum=0.9);
                    batch = 64;
                    epochs = 5;
                    init = he;
                    seed = 1;
                }
            }
        }
    }
}
