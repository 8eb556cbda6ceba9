//! Values during lowering: numbers, strings and lists from consts and arguments, tensors
//! (graph nodes), and `Poison`, the value of anything whose error was already reported, so
//! that one mistake gives one diagnostic rather than a cascade.

use petgraph::stable_graph::NodeIndex;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<Value>),
    Tensor(NodeIndex),
    Poison,
}

impl Value {
    /// How the value is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Int(i) => format!("the integer {i}"),
            Value::Float(f) => format!("the number {f:?}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Bool(b) => format!("`{b}`"),
            Value::List(items) => format!("a list of {}", items.len()),
            Value::Tensor(_) => "a tensor".to_string(),
            Value::Poison => "an invalid value".to_string(),
        }
    }

    /// Whether the value is or contains poison.
    pub fn is_poison(&self) -> bool {
        match self {
            Value::Poison => true,
            Value::List(items) => items.iter().any(Value::is_poison),
            _ => false,
        }
    }
}
