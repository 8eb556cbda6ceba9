//! Compiles `proto/onnx.proto` (ONNX's own, copied from the `onnx` Python package 1.23) into
//! prost types: protox parses it in pure Rust, so a build needs neither `protoc` nor Python.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let files = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(files)?;
    Ok(())
}
