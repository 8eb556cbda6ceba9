//! The generated modules of the examples and test networks, compiled as part of the
//! workspace (with warnings denied), for `tests/equal.rs` to run against the interpreter.

#![deny(warnings)]

/// The examples and test networks, once per schedule (see `build.rs`): `lenet` with every
/// pass, `lenet_unfused` with none, `lenet_no_epilogue` without `epilogue`, ...
mod examples {
    include!(concat!(env!("OUT_DIR"), "/example_modules.rs"));
}
pub use examples::*;

/// Networks of the zoo on small images (see `build.rs`), their inference compared with the
/// interpreter.
pub mod zoo {
    include!(concat!(env!("OUT_DIR"), "/zoo_modules.rs"));
}

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

    /// Names that are Rust keywords become raw identifiers: module `r#type`, input `r#fn`
    /// (written either way inside the macro).
    pub mod keywords {
        netc::network! {
            network type(r#fn: [1, 4, 4], label: class(2)) {
                logits = fn -> flatten -> linear(2);
                loss ce(logits, label);
                output logits;
            }
        }
    }

    /// What `macro_rules!` hands on: `$c:expr` in an invisible group is parenthesized
    /// (`1 + 2` times 2 is 6 channels), a doc comment is a comment, and the trainer scores
    /// the head the `ce` loss weighs most though an auxiliary head is listed first. A network
    /// the trainer cannot take (`flat`) still compiles.
    pub mod from_macro_rules {
        macro_rules! heads {
            ($c:expr) => {
                netc::network! {
                    /// Two heads on one convolution.
                    network heads(image: [1, 4, 4], label: class(2)) {
                        features = image -> conv($c * 2, k=1) -> flatten;
                        aux = features -> linear(2);
                        main = features -> linear(2);
                        loss ce(main, label) + 0.3 * ce(aux, label);
                        output aux, main;
                    }

                    network flat(x: [16], y: class(3)) {
                        s = x -> linear(3);
                        loss ce(s, y);
                        output s;
                    }
                }
            };
        }
        heads!(1 + 2);
    }

    /// Block parameter defaults, calls by name and `repeat` inside `network!`: `r.0` to
    /// `r.2` are three `cna` instances, the last two with widths 8 and 16 by their index.
    pub mod repeated {
        netc::network! {
            block cna(x, c, k=3, s=1, i=0) {
                return x -> conv(c * (i + 1), k=k, s=s, p=k / 2) -> relu;
            }

            network repeated(image: [1, 8, 8], label: class(2)) {
                r = image -> cna(4, s=2) -> repeat(2, cna, 8, k=1, index=i);
                logits = r -> flatten -> linear(2);
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
