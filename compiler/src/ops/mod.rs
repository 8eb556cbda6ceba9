//! The built-in ops of docs/language.md, one file each (or one per family that shares
//! everything, as the pointwise activations in `act.rs` and the pools in `pool.rs`). Each
//! implements [`OpKind`]: its arguments and defaults, shape inference and its errors,
//! parameters and state, cost, the interpreter's forward and backward, the code it
//! generates, what its backward reads, and its JSON attributes. The registry at the bottom
//! lists them: adding an op is its file plus one line there.
//!
//! `args` reads arguments against an op's [`OpSpec`]; `window` holds the window rule the
//! convolutions and pools share; `cost` the [`Cost`] of a layer.

mod args;
mod cost;
mod window;

pub mod act;
pub mod adaptive_avgpool;
pub mod add;
pub mod batchnorm;
pub mod channel_shuffle;
pub mod concat;
pub mod conv;
pub mod conv_t;
pub mod dropout;
pub mod flatten;
pub mod fold;
pub mod global_avgpool;
pub mod groupnorm;
pub mod input;
pub mod layernorm2d;
pub mod linear;
pub mod lrn;
pub mod mul;
pub mod pool;
pub mod scale;
pub mod slice;
pub mod softmax;
pub mod upsample;

pub use args::{
    build, lookup, ArgSource, Arity, Kind, OpSpec, Param, ParamDefault, Reader, LOSSES,
};
pub use cost::{cost, Cost};
pub use window::{dropped, unread_input, window_out};

pub use act::{Act, ActFn};
pub use conv::{Algo, Conv};
pub use conv_t::{invert, ConvT};
pub use input::InputKind;
pub use linear::Linear;
pub use pool::Pool;

use proc_macro2::TokenStream;
use serde_json::{Map, Value as Json};

use crate::codegen::Cx;
use crate::graph::Shape;
use crate::interp::{Bwd, BwdOut, Fwd, FwdOut};
pub use crate::onnx::OnnxCx;

/// Largest accepted size of one dimension or argument.
pub const MAX_DIM: i64 = 1 << 31;
/// Largest accepted number of elements in one per-sample tensor or weight.
pub const MAX_ELEMENTS: u128 = 1 << 40;

/// A pair `[h, w]`; an integer argument `k=3` means `[3, 3]`.
pub type Pair = [usize; 2];

/// A mistake in an op's arguments or input shapes. `arg` names the argument to point at,
/// when one is to blame; otherwise the whole stage is.
#[derive(Clone, Debug, PartialEq)]
pub struct OpError {
    pub message: String,
    pub arg: Option<&'static str>,
    pub help: Option<String>,
}

impl OpError {
    pub(crate) fn new(message: impl Into<String>) -> OpError {
        OpError {
            message: message.into(),
            arg: None,
            help: None,
        }
    }

    pub(crate) fn at(mut self, arg: &'static str) -> OpError {
        self.arg = Some(arg);
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> OpError {
        self.help = Some(help.into());
        self
    }
}

/// How a parameter or state tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Drawn by the initialization scheme (He or Xavier over its fan-in and fan-out).
    Random,
    /// Every element this value (biases 0, a norm's γ 1, a layer scale its `init`).
    Const(f32),
}

/// One trainable parameter or state tensor of a layer: `PATH.suffix`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub suffix: &'static str,
    pub shape: Vec<usize>,
    pub init: Init,
    /// State (running statistics) is updated by the forward pass, not trained.
    pub state: bool,
}

impl ParamDecl {
    pub fn weight(shape: Vec<usize>) -> ParamDecl {
        ParamDecl {
            suffix: "weight",
            shape,
            init: Init::Random,
            state: false,
        }
    }

    pub fn new(suffix: &'static str, shape: Vec<usize>, init: f32) -> ParamDecl {
        ParamDecl {
            suffix,
            shape,
            init: Init::Const(init),
            state: false,
        }
    }

    /// A GEMM layer's parameters: its weight of `shape`, drawn at random, and, with `bias`,
    /// a bias of `out` zeros.
    pub fn weight_and_bias(shape: Vec<usize>, bias: bool, out: usize) -> Vec<ParamDecl> {
        let mut v = vec![ParamDecl::weight(shape)];
        if bias {
            v.push(ParamDecl::new("bias", vec![out], 0.0));
        }
        v
    }

    pub fn state(suffix: &'static str, shape: Vec<usize>, init: f32) -> ParamDecl {
        ParamDecl {
            state: true,
            ..ParamDecl::new(suffix, shape, init)
        }
    }
}

/// A buffer the forward pass of a training step fills for the backward pass, named by its
/// letter and the node's index in generated code (`a7`: max-pool argmaxes of node 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedDecl {
    pub letter: char,
    /// Elements per sample, or in all with `fixed`.
    pub elems: usize,
    pub fixed: bool,
    /// `u32` elements (indices) rather than `f32`.
    pub index: bool,
}

impl SavedDecl {
    /// `elems` `f32`s per sample.
    pub fn per_sample(letter: char, elems: usize) -> SavedDecl {
        SavedDecl {
            letter,
            elems,
            fixed: false,
            index: false,
        }
    }
}

/// What an op's backward reads besides the gradient of its output and its parameters:
/// this decides liveness, and whether its input's buffer may be overwritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    pub input: bool,
    pub output: bool,
}

/// Everything one op knows. The interpreter, the code generator, the shape checker, the
/// report and the memory plan ask it; none of them matches on ops.
pub trait OpKind: std::fmt::Debug {
    /// The name a user writes.
    fn name(&self) -> &'static str;

    /// The output shape for inputs of shapes `ins` (one at least), or what is wrong.
    fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError>;

    /// Parameters and state for input shapes `ins`, in the order PyTorch lists them.
    fn params(&self, _ins: &[&Shape]) -> Vec<ParamDecl> {
        Vec::new()
    }

    /// Multiply-accumulates per sample (docs/language.md "Meaning": only GEMM layers count).
    fn macs(&self, _ins: &[&Shape], _y: &Shape) -> u64 {
        0
    }

    /// Every argument, defaults filled in (enough to rebuild the layer elsewhere).
    fn attrs(&self) -> Map<String, Json> {
        Map::new()
    }

    /// `7×7/2` for windowed ops.
    fn window(&self) -> Option<String> {
        None
    }

    /// Whether the layer counts toward depth, as Table 1 counts.
    fn is_weighted_layer(&self) -> bool {
        false
    }

    /// Buffers a training forward keeps for backward.
    fn saved(&self, _ins: &[&Shape], _y: &Shape) -> Vec<SavedDecl> {
        Vec::new()
    }

    /// Elements of shared scratch (`col`: im2col, col2im, per-image temporaries) needed.
    fn col(&self, _ins: &[&Shape], _y: &Shape) -> usize {
        0
    }

    /// Whether its backward takes a fused activation's gradient (`Op::fused`) through the
    /// activation's mask itself; otherwise the code before it masks the gradient in a pass
    /// of its own.
    fn masks_own_gradient(&self) -> bool {
        false
    }

    /// Whether its training forward mixes the images of a batch (batchnorm's statistics
    /// are the batch's): shards computing them each alone would compute something else,
    /// so the training shards of a network with such a layer run together and exchange
    /// its sums (`plan::shards`, `rt::shard::Group`).
    fn mixes_images_in_training(&self) -> bool {
        false
    }

    /// What backward reads.
    fn reads(&self) -> Reads {
        Reads {
            input: true,
            output: false,
        }
    }

    /// Interpreter, forward: fill `out.y` (in training also `out.saved`, and the new
    /// values of state tensors into `out.state`).
    fn forward(&self, cx: &Fwd, out: &mut FwdOut);

    /// Interpreter, backward: the gradients of the inputs that want one (`cx.wants`) and of
    /// the parameters, into `out`.
    fn backward(&self, cx: &Bwd, out: &mut BwdOut);

    /// Generated code: the layer's geometry (its type, and a constant expression of it) when
    /// its kernels take one; it becomes one `const` per layer, `cx.geo()` in `emit`.
    fn geometry(&self, _cx: &Cx) -> Option<(TokenStream, TokenStream)> {
        None
    }

    /// Generated code: the statements of the forward and backward passes.
    fn emit(&self, cx: &Cx) -> (TokenStream, TokenStream);

    /// Generated code: the statements of inference, for an op whose inference differs from
    /// its training forward: batchnorm reads its running statistics (which training
    /// updates), max pooling keeps no argmaxes, dropout draws no mask, LRN keeps no
    /// denominators, a conv folds the batchnorm after it. `None`: the training forward
    /// serves (over the inference workspace's buffers).
    fn emit_infer(&self, _cx: &Cx) -> Option<TokenStream> {
        None
    }

    /// Whether its forward at inference also writes what a training forward keeps (`saved`):
    /// the group and layer norms compute it anyway; batchnorm, max pooling, dropout and LRN
    /// (with their inference forms) do not. The inference workspace holds only what is
    /// written.
    fn keeps_at_inference(&self) -> bool {
        true
    }

    /// ONNX: the nodes of its inference form, from `cx.ins` to `cx.y` (see
    /// [`crate::onnx`]); an op ONNX lacks writes its standard decomposition.
    fn onnx(&self, cx: &mut OnnxCx) -> Result<(), OpError>;
}

/// The ops, each variant the argument struct of its file. Passes match on it to rewrite
/// the graph; everything else goes through [`Op::kind`].
macro_rules! registry {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $($variant($ty)),*
        }

        impl Op {
            /// What the op knows.
            pub fn kind(&self) -> &dyn OpKind {
                match self {
                    $(Op::$variant(o) => o),*
                }
            }
        }
    };
}

registry! {
    Input(InputKind),
    Conv(Conv),
    ConvT(ConvT),
    Pool(Pool),
    GlobalAvgPool(global_avgpool::GlobalAvgPool),
    AdaptiveAvgPool(adaptive_avgpool::AdaptiveAvgPool),
    Act(Act),
    Softmax(softmax::Softmax),
    BatchNorm(batchnorm::BatchNorm),
    LayerNorm2d(layernorm2d::LayerNorm2d),
    GroupNorm(groupnorm::GroupNorm),
    Lrn(lrn::Lrn),
    Dropout(dropout::Dropout),
    Flatten(flatten::Flatten),
    Linear(Linear),
    Concat(concat::Concat),
    Add(add::Add),
    Mul(mul::Mul),
    Scale(scale::Scale),
    Upsample(upsample::Upsample),
    ChannelShuffle(channel_shuffle::ChannelShuffle),
    Slice(slice::Slice),
}

/// Every op a user can write, in docs/language.md's order: each file's specs.
pub fn all() -> &'static [OpSpec] {
    static ALL: std::sync::LazyLock<Vec<OpSpec>> = std::sync::LazyLock::new(|| {
        [
            conv::SPECS,
            conv_t::SPECS,
            pool::SPECS,
            global_avgpool::SPECS,
            act::SPECS,
            batchnorm::SPECS,
            lrn::SPECS,
            dropout::SPECS,
            flatten::SPECS,
            linear::SPECS,
            concat::SPECS,
            add::SPECS,
            softmax::SPECS,
            mul::SPECS,
            scale::SPECS,
            upsample::SPECS,
            adaptive_avgpool::SPECS,
            layernorm2d::SPECS,
            groupnorm::SPECS,
            channel_shuffle::SPECS,
            slice::SPECS,
        ]
        .concat()
    });
    &ALL
}

impl Op {
    /// The name a user writes for this op.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Layers that count toward depth, as Table 1 counts them.
    pub fn is_weighted_layer(&self) -> bool {
        self.kind().is_weighted_layer()
    }

    /// `7×7/2` for windowed ops.
    pub fn window(&self) -> Option<String> {
        self.kind().window()
    }

    /// Every argument, defaults filled in, as JSON (enough to rebuild the layer elsewhere).
    pub fn attrs(&self) -> Map<String, Json> {
        self.kind().attrs()
    }

    /// The output shape of this op applied to inputs of shapes `ins`.
    pub fn infer(&self, ins: &[&Shape]) -> Result<Shape, OpError> {
        self.kind().infer(ins)
    }

    /// The activation a GEMM layer applies in its epilogue (set by the `epilogue` pass).
    pub fn fused(&self) -> Option<ActFn> {
        match self {
            Op::Conv(c) => c.act,
            Op::Linear(l) => l.act,
            Op::BatchNorm(b) => b.act,
            _ => None,
        }
    }

    /// A pointwise activation's function, if the op is one.
    pub fn act(&self) -> Option<ActFn> {
        match self {
            Op::Act(a) => Some(a.f),
            _ => None,
        }
    }
}

/// A JSON object from `json!({..})`.
pub(crate) fn object(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn pair_str(p: Pair) -> String {
    format!("[{}, {}]", p[0], p[1])
}

/// The product of sizes, saturating: callers compare it with [`MAX_ELEMENTS`], so an
/// overflow must read as "too large", never wrap around.
pub(crate) fn product(sizes: &[usize]) -> u128 {
    sizes
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128))
}

/// Channels and the size of one channel's plane (1 for a feature vector).
pub(crate) fn channels(shape: &[usize]) -> (usize, usize) {
    (shape[0], shape[1..].iter().product())
}

/// Elements of a per-sample shape.
pub(crate) fn elems(shape: &[usize]) -> usize {
    shape.iter().product()
}
