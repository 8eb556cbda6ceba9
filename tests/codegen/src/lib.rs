//! The generated modules of the examples and test networks, compiled as part of the
//! workspace (with warnings denied), for `tests/equal.rs` to run against the interpreter.

#![deny(warnings)]

/// LeNet-5 (`examples/lenet.net`).
pub mod lenet {
    include!(concat!(env!("OUT_DIR"), "/lenet.rs"));
}

/// The convolutional autoencoder (`examples/autoencoder.net`).
pub mod autoencoder {
    include!(concat!(env!("OUT_DIR"), "/autoencoder.rs"));
}

/// GoogLeNet with both auxiliary classifiers (`examples/googlenet.net`).
pub mod googlenet {
    include!(concat!(env!("OUT_DIR"), "/googlenet.rs"));
}

/// The lecture's 3×3 conv (`examples/lecture.net`, network `naive`).
pub mod lecture_naive {
    include!(concat!(env!("OUT_DIR"), "/lecture_naive.rs"));
}

/// The lecture's 3×3 conv after a 1×1 reduction (network `reduced`).
pub mod lecture_reduced {
    include!(concat!(env!("OUT_DIR"), "/lecture_reduced.rs"));
}

/// A small Inception network with an auxiliary head.
pub mod small_inception {
    include!(concat!(env!("OUT_DIR"), "/small_inception.rs"));
}

/// A network of every op.
pub mod every_op {
    include!(concat!(env!("OUT_DIR"), "/every_op.rs"));
}

/// `lenet` with every optional pass skipped.
pub mod lenet_unfused {
    include!(concat!(env!("OUT_DIR"), "/lenet_unfused.rs"));
}

/// `autoencoder` with every optional pass skipped.
pub mod autoencoder_unfused {
    include!(concat!(env!("OUT_DIR"), "/autoencoder_unfused.rs"));
}

/// `googlenet` with every optional pass skipped.
pub mod googlenet_unfused {
    include!(concat!(env!("OUT_DIR"), "/googlenet_unfused.rs"));
}

/// `lecture_naive` with every optional pass skipped.
pub mod lecture_naive_unfused {
    include!(concat!(env!("OUT_DIR"), "/lecture_naive_unfused.rs"));
}

/// `lecture_reduced` with every optional pass skipped.
pub mod lecture_reduced_unfused {
    include!(concat!(env!("OUT_DIR"), "/lecture_reduced_unfused.rs"));
}

/// `small_inception` with every optional pass skipped.
pub mod small_inception_unfused {
    include!(concat!(env!("OUT_DIR"), "/small_inception_unfused.rs"));
}

/// `every_op` with every optional pass skipped.
pub mod every_op_unfused {
    include!(concat!(env!("OUT_DIR"), "/every_op_unfused.rs"));
}

/// Random networks of every op (see `build.rs`), each compared with the interpreter.
pub mod random {
    include!(concat!(env!("OUT_DIR"), "/random_modules.rs"));
}
