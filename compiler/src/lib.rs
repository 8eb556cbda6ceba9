//! netc-compiler: lowering, the graph IR, shapes, costs, reports and passes.
