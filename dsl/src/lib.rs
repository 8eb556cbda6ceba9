//! netc-dsl: the `.net` language. A pest grammar (`net.pest`), an AST in which every node
//! keeps its span, the parser, and diagnostics rendered with source context.

#![forbid(unsafe_code)]

pub mod ast;
pub mod diag;
pub mod parse;
mod snippet;
pub mod span;
mod syntax_error;

pub use diag::{Diagnostic, Severity};
pub use parse::parse;
pub use span::{FileId, SourceMap, Span};
