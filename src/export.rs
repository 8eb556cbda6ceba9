//! `netc export`: a network's inference graph as an ONNX model (`netc_compiler::onnx`), with
//! weights from a checkpoint or `state_dict` (`--weights`), or initialized as the trainer
//! initializes them (`--seed`, the init scheme of the network's `train { }` section).

use std::path::Path;

use netc_compiler::interp::{self, Params};
use netc_compiler::Graph;

/// The parameters the model carries: read from `weights`, or drawn as the trainer draws
/// them from `seed` (default: the network's own seed), over the whole training graph so
/// that every draw matches the trainer's, auxiliary heads included.
pub fn params(g: &Graph, weights: Option<&Path>, seed: Option<u64>) -> Result<Params, String> {
    if let Some(path) = weights {
        return crate::run::load_weights(g, path);
    }
    let init = match g.train.init {
        Some(netc_compiler::train::Init::Xavier) => netc_runtime::init::Init::Xavier,
        _ => netc_runtime::init::Init::He,
    };
    Ok(interp::init_params(
        g,
        init,
        seed.unwrap_or(g.train.seed.unwrap_or(1)),
    ))
}

/// The whole command: check `out`, make the parameters, export, write atomically.
pub fn export(
    g: &Graph,
    file: &Path,
    weights: Option<&Path>,
    seed: Option<u64>,
    out: &Path,
) -> Result<(), String> {
    let mut reads = vec![file];
    reads.extend(weights);
    crate::run::check_out(out, &reads)?;
    let params = params(g, weights, seed)?;
    let bytes = netc_compiler::onnx::model_bytes(g, &params, env!("CARGO_PKG_VERSION"))
        .map_err(|e| e.to_string())?;
    netc_train::files::write_atomic(out, &bytes)
}
