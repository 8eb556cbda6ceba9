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
