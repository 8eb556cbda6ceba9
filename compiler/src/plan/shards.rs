//! shards: how a batch is cut by images into shards, each run through the whole network on
//! one thread (`rt::shard`, the generated `Sharded` workspace). Splitting each layer over
//! the threads pays the pool's wake-ups in every kernel and leaves small layers on one
//! thread (`threads`); shards share the parameters, and nothing else but the sums of the
//! layers that mix the images.
//!
//! Inference computes every image on its own, so it is cut into a shard per thread whenever
//! each gets [`INFER_SHARD_IMAGES`]: the outputs are the same bits. A training step where no
//! layer mixes the images of a batch is cut into shards of at least [`TRAIN_SHARD_IMAGES`]
//! whose gradients are summed in a fixed order; the number of shards depends on the batch
//! alone, so a step computes the same bits on any number of threads (not the same as one
//! unsharded batch: the sums over images are grouped otherwise). Where a layer mixes the
//! images (`OpKind::mixes_images_in_training`: batchnorm), the shards run together, one per
//! thread of at least [`TOGETHER_SHARD_IMAGES`], and exchange that layer's sums
//! (`rt::shard::Group`): its statistics stay the whole batch's, and one thread computes the
//! bits of the whole batch.

use crate::graph::Graph;

/// The fewest images of a training shard. LeNet's step on one thread ran 13.2k img/s at
/// batch 16, 13.6k at 32 and 64 (`netc bench examples/lenet.net --threads 1`): past 16 a
/// shard's GEMMs are wide enough, and a batch of 32 already splits for two threads.
pub const TRAIN_SHARD_IMAGES: usize = 16;

/// The fewest images of a training shard that runs together with the others. ResNet-50 and
/// MobileNetV2 at batch 8 on two threads train faster in two shards of 4 than in one batch
/// split layer by layer (`netc bench`, which prints both).
pub const TOGETHER_SHARD_IMAGES: usize = 4;

/// The fewest images of an inference shard.
pub const INFER_SHARD_IMAGES: usize = 1;

/// How a program's batches are sharded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shards {
    /// The fewest images of a training shard.
    pub train_images: usize,
    /// Whether training's shards run together, one per thread, exchanging the sums of the
    /// layers that mix the images; else they are cut by the batch alone.
    pub together: bool,
    /// The fewest images of an inference shard.
    pub infer_images: usize,
    /// The first layer that mixes the images of a batch in training, by path.
    pub mixing: Option<String>,
}

/// The sharding of the network `g` (the checked graph).
pub fn shards(g: &Graph) -> Shards {
    let mixing = g
        .training_nodes()
        .into_iter()
        .map(|n| g.node(n))
        .find(|node| node.op.kind().mixes_images_in_training())
        .map(|node| node.path.clone());
    Shards {
        train_images: if mixing.is_some() {
            TOGETHER_SHARD_IMAGES
        } else {
            TRAIN_SHARD_IMAGES
        },
        together: mixing.is_some(),
        infer_images: INFER_SHARD_IMAGES,
        mixing,
    }
}
