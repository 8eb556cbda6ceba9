//! netc for Rust code: networks in the `.net` language inside your crate, checked and compiled
//! as it builds, and trained from `main` with the trainer of `netc train`.
//!
//! - [`network!`] takes the language's text inline; [`include_net!`] a `.net` file (path
//!   relative to your `Cargo.toml`; cargo rebuilds when it changes). Each network becomes a
//!   module of the same name holding what `netc emit` writes: `Params`, `Grads`, `State`,
//!   `Workspace`, `Inputs`, `forward`, `forward_train`, `backward`, each output as
//!   `output_NAME`, and every activation by path. A mistake (a shape that does not fit, an
//!   unknown op or argument, a bad name) is a compile error at the token that caused it.
//! - [`train::Trainer`] trains a network's `Net` with the standalone trainer's loop: progress
//!   bars, checkpoints, metrics and charts, settings defaulting to the network's `train { }`.
//! - [`rt`] is the runtime the generated code calls: SGEMM, the kernels, optimizers, data.
//!
//! ```
//! netc::network! {
//!     network tiny(image: [1, 8, 8], label: class(3)) {
//!         logits = image -> conv(4, k=3) -> relu -> flatten -> linear(3);
//!         loss ce(logits, label);
//!         output logits;
//!         train { optimizer = sgd(lr=0.1, momentum=0.9); batch = 16; epochs = 2; }
//!     }
//! }
//!
//! // Inference: parameters, buffers for a batch of 2, and the class scores.
//! let params = tiny::Params::new();
//! let mut ws = tiny::Workspace::new(2);
//! let images = vec![0.5f32; 2 * 8 * 8];
//! tiny::forward(&params, &tiny::State::new(), &mut ws, &tiny::Inputs { image: &images, label: &[] });
//! assert_eq!(tiny::output_logits(&ws).len(), 2 * 3);
//!
//! // Training, on seeded random images, with the run's files in a temporary folder (where
//! // `overwrite` replaces an earlier run's checkpoints, which a fresh run would refuse).
//! let trained = netc::train::Trainer::<tiny::Net>::new()
//!     .data("synthetic:128")
//!     .out(std::env::temp_dir().join(format!("netc-doc-tiny-{}", std::process::id())))
//!     .overwrite(true)
//!     .quiet(true)
//!     .run()?;
//! assert_eq!(trained.epochs.len(), 2);
//! # Ok::<(), netc::train::Error>(())
//! ```

pub use netc_macros::{include_net, network};
pub use netc_runtime as rt;
pub use netc_train as train;
