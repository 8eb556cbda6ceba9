//! Every kind of mistake in docs/language.md "Errors" (and the warnings), rendered in full and
//! compared with a reviewed snapshot: the file, line and column, the underlined span, what
//! was expected and found, and the hint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use netc_compiler::load::{self, Loader};
use netc_compiler::{check_program, Checked};

/// Files in memory, for `use`.
struct Files(HashMap<PathBuf, String>);

impl Loader for Files {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
        })
    }
}

fn check_with(files: &[(&str, &str)], network: Option<&str>) -> Checked {
    let loader = Files(
        files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect(),
    );
    let (prog, diags) = load::load_file(Path::new(files[0].0), &loader);
    check_program(prog, diags, network)
}

/// Snapshots the rendered diagnostics of `src`, which must have at least one error.
fn error(name: &str, src: &str) {
    let checked = check_with(&[("net/t.net", src)], None);
    assert!(
        checked.has_errors(),
        "{name}: expected an error\n{}",
        checked.render()
    );
    insta::assert_snapshot!(name, checked.render());
}

/// Snapshots the rendered diagnostics of `src`, which must be valid but warn.
fn warning(name: &str, src: &str) {
    let checked = check_with(&[("net/t.net", src)], None);
    assert!(
        !checked.has_errors(),
        "{name}: expected no error\n{}",
        checked.render()
    );
    assert!(checked.warnings().count() > 0, "{name}: expected a warning");
    insta::assert_snapshot!(name, checked.render());
}

macro_rules! errors {
    ($($name:ident: $src:expr;)*) => { $( #[test] fn $name() { error(stringify!($name), $src); } )* };
}
macro_rules! warnings {
    ($($name:ident: $src:expr;)*) => { $( #[test] fn $name() { warning(stringify!($name), $src); } )* };
}

const NET: &str = "network n(x: [3, 32, 32]) {";
const NET_L: &str = "network n(x: [3, 32, 32], label: class(10)) {";

errors! {
    parse_missing_semicolon: "network n(x: [1, 8, 8]) {\n    y = x -> relu\n    output y;\n}\n";
    parse_3x3_literal: "network n(x: [1, 8, 8]) {\n    y = x -> conv(4, k=3x3);\n    output y;\n}\n";
    parse_hash_comment: "# a comment\nnetwork n(x: [1, 8, 8]) { output x; }\n";
    parse_keyword_as_name: "network n(x: [1, 8, 8]) {\n    output = x -> relu;\n}\n";
    parse_unclosed_block: "block b(x) {\n    y = x -> relu;\n}\n";
    parse_unterminated_comment: "network n(x: [1, 8, 8]) { output x; }\n/* never /* nested */ closed\n";
    parse_unterminated_string: "use \"blocks.net;\nnetwork n(x: [1, 8, 8]) { output x; }\n";
    nesting_too_deep: &format!("const a = {}1{};\n", "(".repeat(80), ")".repeat(80));
    unknown_op: &format!("{NET}\n    y = x -> convv(8, k=3) -> relu;\n    output y;\n}}\n");
    unknown_op_no_suggestion: &format!("{NET}\n    y = x -> softplus;\n    output y;\n}}\n");
    loss_used_as_layer: &format!("{NET}\n    y = x -> ce;\n    output y;\n}}\n");
    unknown_loss: &format!("{NET_L}\n    y = x -> flatten -> linear(10);\n    loss cee(y, label);\n    output y;\n}}\n");
    unknown_argument: &format!("{NET}\n    y = x -> conv(8, k=3, stride=2);\n    output y;\n}}\n");
    unknown_argument_near: &format!("{NET}\n    y = x -> conv(8, k=3, dill=2);\n    output y;\n}}\n");
    missing_argument: &format!("{NET}\n    y = x -> conv(k=3);\n    output y;\n}}\n");
    too_many_arguments: &format!("{NET}\n    y = x -> relu(3);\n    output y;\n}}\n");
    duplicate_argument: &format!("{NET}\n    y = x -> conv(8, 3, k=5);\n    output y;\n}}\n");
    wrong_argument_type: &format!("{NET}\n    y = x -> conv(8, k=\"3\");\n    output y;\n}}\n");
    zero_size: &format!("{NET}\n    y = x -> conv(0, k=3);\n    output y;\n}}\n");
    zero_stride: &format!("{NET}\n    y = x -> maxpool(k=2, s=0);\n    output y;\n}}\n");
    negative_padding: &format!("{NET}\n    y = x -> conv(8, k=3, p=-1);\n    output y;\n}}\n");
    fractional_size: &format!("const width = 5;\n{NET}\n    y = x -> conv(width / 2.0, k=3);\n    output y;\n}}\n");
    dropout_probability: &format!("{NET}\n    y = x -> dropout(1.5);\n    output y;\n}}\n");
    no_input_to_op: &format!("{NET}\n    y = conv(8, k=3);\n    output y;\n}}\n");
    window_too_large: "network n(x: [3, 5, 5]) {\n    y = x -> conv(8, k=7);\n    output y;\n}\n";
    same_padding_needs_stride_1: &format!("{NET}\n    y = x -> conv(8, k=3, s=2, p=\"same\");\n    output y;\n}}\n");
    groups_must_divide: &format!("{NET}\n    y = x -> conv(8, k=3, groups=2);\n    output y;\n}}\n");
    pool_padding_over_half: &format!("{NET}\n    y = x -> maxpool(k=3, s=2, p=2);\n    output y;\n}}\n");
    conv_t_output_padding: &format!("{NET}\n    y = x -> conv_t(8, k=3, s=2, op=2);\n    output y;\n}}\n");
    concat_mismatch: &format!("{NET}\n    a = x -> conv(8, k=3, p=1);\n    b = x -> conv(8, k=3, s=2, p=1);\n    y = concat(a, b);\n    output y;\n}}\n");
    add_mismatch: &format!("{NET}\n    a = x -> conv(16, k=3, p=1);\n    y = add(x, a);\n    output y;\n}}\n");
    concat_needs_two: &format!("{NET}\n    y = concat(x);\n    output y;\n}}\n");
    linear_on_image: &format!("{NET}\n    y = x -> conv(8, k=3) -> linear(10);\n    output y;\n}}\n");
    conv_on_features: "network n(x: [64]) {\n    y = x -> conv(8, k=3);\n    output y;\n}\n";
    invert_of_non_conv: &format!("{NET}\n    e = x -> conv(8, k=3, s=2, p=1) -> relu;\n    y = e -> invert(of=e);\n    output y;\n}}\n");
    invert_wrong_size: &format!("{NET}\n    e = x -> conv(8, k=3, s=2, p=1);\n    y = x -> invert(of=e);\n    output y;\n}}\n");
    invert_without_of: &format!("{NET}\n    y = x -> invert;\n    output y;\n}}\n");
    cycle: &format!("{NET}\n    a = b -> relu;\n    b = a -> conv(8, k=1);\n    output b;\n}}\n");
    self_cycle: &format!("{NET}\n    a = a -> relu;\n    output a;\n}}\n");
    block_recursion: &format!("block f(x) {{\n    return x -> g;\n}}\nblock g(x) {{\n    return x -> f;\n}}\n{NET}\n    y = x -> f;\n    output y;\n}}\n");
    const_cycle: "const a = b + 1;\nconst b = a * 2;\nnetwork n(x: [a]) { output x; }\n";
    undefined_name: &format!("{NET}\n    stem = x -> conv(8, k=3);\n    y = stme -> relu;\n    output y;\n}}\n");
    undefined_const: "network n(x: [3, size, size]) { output x; }\n";
    undefined_output: &format!("{NET}\n    y = x -> relu;\n    output logits;\n}}\n");
    op_used_as_value: &format!("{NET}\n    y = relu;\n    output y;\n}}\n");
    duplicate_binding: &format!("{NET}\n    y = x -> relu;\n    y = x -> tanh;\n    output y;\n}}\n");
    duplicate_path: &format!("{NET}\n    y = x -> conv(8, k=3) as c -> relu -> conv(8, k=3) as c;\n    output y;\n}}\n");
    duplicate_block: "block b(x) { return x -> relu; }\nblock b(x) { return x -> tanh; }\n";
    block_named_like_op: "block conv(x) { return x -> relu; }\n";
    block_named_like_loss: "block l1(x) { return x -> relu; }\n";
    block_missing_argument: &format!("block unit(x, c) {{\n    return x -> conv(c, k=3, p=1);\n}}\n{NET}\n    y = x -> unit;\n    output y;\n}}\n");
    block_unknown_parameter: &format!("block unit(x, c) {{\n    return x -> conv(c, k=3, p=1);\n}}\n{NET}\n    y = x -> unit(chans=8);\n    output y;\n}}\n");
    default_before_required: "block cna(x, k=3, c) { return x -> conv(c, k=k); }\n";
    default_refers_to_parameter: "block cna(x, c, k=c) { return x -> conv(c, k=k); }\n";
    default_is_a_layer: "block cna(x, c, k=x -> relu) { return x -> conv(c, k=3); }\n";
    default_missing_required: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> cna(s=2);\n    output y;\n}}\n");
    default_unknown_named: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> cna(8, stride=2);\n    output y;\n}}\n");
    default_given_twice: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> cna(8, 5, k=3);\n    output y;\n}}\n");
    default_named_twice: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> cna(8, s=2, s=1);\n    output y;\n}}\n");
    repeat_of_an_op: &format!("{NET}\n    y = x -> repeat(3, relu);\n    output y;\n}}\n");
    repeat_of_unknown: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(3, cnn, 8);\n    output y;\n}}\n");
    repeat_zero: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(0, cna, 8);\n    output y;\n}}\n");
    repeat_not_constant: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(x, cna, 8);\n    output y;\n}}\n");
    repeat_float_count: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2.5, cna, 8);\n    output y;\n}}\n");
    repeat_index_no_parameter: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, index=i);\n    output y;\n}}\n");
    repeat_index_input: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, index=x);\n    output y;\n}}\n");
    repeat_index_and_argument: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, s=1, index=s);\n    output y;\n}}\n");
    repeat_too_many: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(1000000, cna, 8);\n    output y;\n}}\n");
    repeat_prefix_not_a_name: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=\"2nd\");\n    output y;\n}}\n");
    repeat_prefix_not_a_string: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=layer);\n    output y;\n}}\n");
    repeat_start_without_prefix: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, start=1);\n    output y;\n}}\n");
    repeat_start_negative: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=\"layer\", start=0 - 1);\n    output y;\n}}\n");
    repeat_start_not_integer: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=\"layer\", start=1.5);\n    output y;\n}}\n");
    repeat_prefix_collides: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> cna(8) as layer1 -> repeat(2, cna, 8, prefix=\"layer\");\n    output y;\n}}\n");
    repeat_at_head: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = repeat(2, cna, x, 8);\n    output y;\n}}\n");
    repeat_at_head_value_first: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = repeat(x, 2, cna, 8);\n    output y;\n}}\n");
    repeat_hidden_by_a_block: &format!("block repeat(x, n, c) {{\n    return x -> conv(c, k=1);\n}}\nblock cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8);\n    output y;\n}}\n");
    block_used_as_value: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = add(x, cna);\n    output y;\n}}\n");
    repeat_bare: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat;\n    output y;\n}}\n");
    repeat_named_with_as: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8) as body;\n    output y;\n}}\n");
    repeat_without_block: &format!("{NET}\n    y = x -> repeat(2);\n    output y;\n}}\n");
    repeat_block_not_a_name: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna(8));\n    output y;\n}}\n");
    repeat_error_in_repetition: &format!("block shrink(x, c) {{\n    return x -> conv(c, k=3) -> relu;\n}}\n{NET}\n    y = x -> repeat(20, shrink, 8);\n    output y;\n}}\n");
    repeat_count_through_parameter: &format!("block u(x, c) {{\n    return x -> conv(c, k=1);\n}}\nblock stage(x, n, c) {{\n    return x -> repeat(n, u, c);\n}}\n{NET}\n    a = x -> stage(2, 8);\n    b = x -> stage(2.5, 8);\n    output a, b;\n}}\n");
    repeat_prefix_is_an_as_name: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    a = x -> conv(8, k=1) as layer1;\n    y = a -> repeat(3, cna, 8, prefix=\"layer\");\n    output y;\n}}\n");
    repeat_prefix_is_a_binding: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    layer0 = x -> relu;\n    y = layer0 -> repeat(2, cna, 8, prefix=\"layer\");\n    output y;\n}}\n");
    repeat_prefix_is_an_input: "block cna(x, c) { return x -> conv(c, k=1); }\nnetwork n(layer0: [3, 8, 8]) {\n    y = layer0 -> repeat(2, cna, 8, prefix=\"layer\");\n    output y;\n}\n";
    repeat_prefix_twice_in_a_chain: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=\"b\") -> repeat(2, cna, 8, prefix=\"b\");\n    output y;\n}}\n");
    repeat_prefix_clash_in_a_block: &format!("block cna(x, c) {{\n    return x -> conv(c, k=1);\n}}\nblock stage(x) {{\n    a = x -> conv(8, k=1) as l2;\n    return a -> repeat(3, cna, 8, prefix=\"l\");\n}}\n{NET}\n    y = x -> stage;\n    output y;\n}}\n");
    repeat_past_the_limit: &format!("block unit(x, c) {{\n    return x -> conv(c, k=1) -> relu;\n}}\n{NET}\n    y = x -> repeat(200000, unit, 2);\n    output y;\n}}\n");
    repeat_nested_past_the_limit: &format!("block a(x) {{ return x -> relu; }}\nblock b(x) {{ return x -> repeat(1000, a); }}\nblock c(x) {{ return x -> repeat(1000, b); }}\n{NET}\n    y = x -> relu -> repeat(1000, c);\n    output y;\n}}\n");
    repeat_of_itself_reported_once: &format!("block u(x, c) {{ return x -> repeat(2, u, c); }}\n{NET}\n    y = x -> repeat(3, u, 8);\n    output y;\n}}\n");
    repeat_index_twice: &format!("block u(x, c, i=0) {{\n    return x -> conv(c * (i + 1), k=3, p=1);\n}}\n{NET}\n    y = x -> repeat(2, u, 8, index=i, index=i);\n    output y;\n}}\n");
    repeat_prefix_twice: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=\"a\", prefix=\"b\");\n    output y;\n}}\n");
    repeat_start_twice: &format!("block cna(x, c, k=3, s=1) {{\n    return x -> conv(c, k=k, s=s, p=k / 2) -> relu;\n}}\n{NET}\n    y = x -> repeat(2, cna, 8, prefix=\"a\", start=1, start=1);\n    output y;\n}}\n");
    error_inside_block: &format!("block unit(x, c) {{\n    y = x -> conv(c, k=3) -> linear(c);\n    return y;\n}}\n{NET}\n    a = x -> unit(8);\n    output a;\n}}\n");
    label_as_tensor: &format!("{NET_L}\n    y = label -> relu;\n    output y;\n}}\n");
    ce_shape: &format!("{NET_L}\n    y = x -> flatten -> linear(12);\n    loss ce(y, label);\n    output y;\n}}\n");
    ce_argument_order: &format!("{NET_L}\n    y = x -> flatten -> linear(10);\n    loss ce(label, y);\n    output y;\n}}\n");
    mse_shape: &format!("{NET}\n    y = x -> conv(3, k=3);\n    loss mse(y, x);\n    output y;\n}}\n");
    arithmetic_on_tensor: &format!("{NET}\n    y = x -> flatten -> linear(x + 1);\n    output y;\n}}\n");
    division_by_zero: "const a = 4 / 0;\nnetwork n(x: [a]) { output x; }\n";
    input_with_batch_dim: "network n(x: [32, 3, 28, 28]) { output x; }\n";
    output_not_tensor: "const c = 3;\nnetwork n(x: [8]) {\n    k = c;\n    output k;\n}\n";
    unknown_train_setting: &format!("{NET}\n    y = x -> relu;\n    output y;\n    train {{ optimiser = sgd(lr=0.1); }}\n}}\n");
    bad_optimizer: &format!("{NET}\n    y = x -> relu;\n    output y;\n    train {{ optimizer = sdg(lr=0.1); batch = 0; }}\n}}\n");
    optimizer_missing_lr: &format!("{NET}\n    y = x -> relu;\n    output y;\n    train {{ optimizer = adam(beta1=0.8); init = kaiming; }}\n}}\n");
    undefined_loss_weight: &format!("{NET_L}\n    y = x -> flatten -> linear(10);\n    loss w * ce(y, label);\n    output y;\n}}\n");
    integer_overflow: &format!("{NET}\n    y = x -> flatten -> linear((-9223372036854775807 - 1) / -1);\n    output y;\n}}\n");
    huge_conv_t: "network n(x: [1, 1048576, 1048576]) {\n    y = x -> conv_t(2147483648, k=1, s=2147483648);\n    output y;\n}\n";
    exponential_blocks: &thirty_doubling_blocks();
    long_expression: &format!("const a = {}1;\nnetwork n(x: [a]) {{ output x; }}\n", "1 + ".repeat(300));
    unchecked_const: "const bad = nothing_here * 2;\nnetwork n(x: [3]) { output x; }\n";
    train_values_out_of_range: &format!("{NET}\n    y = x -> relu;\n    output y;\n    train {{ optimizer = sgd(lr=true, nesterov=0.5); }}\n}}\n");
    binding_is_a_number: &format!("{NET}\n    y = 3;\n    output y;\n}}\n");
    misplaced_as: &format!("{NET}\n    y = x as z -> relu;\n    output y;\n}}\n");
    // Issue 12, hostile input: errors past column 65,535 (where miette's renderer panicked),
    // bytes that are not text, and old Mac line endings.
    error_past_column_65535: &format!("{NET} y = x{} -> convv; output y; }}\n", " -> relu".repeat(9_000));
    parse_error_after_70000_spaces: &format!("{NET}\n{}y = x -> relu output y;\n}}\n", " ".repeat(70_000));
    parse_nul_byte: "network n(x: [1, 8, 8]) {\n    y = x\0 -> relu;\n    output y;\n}\n";
    parse_control_character: "network n(x: [1, 8, 8]) {\n    y = x -> re\x07lu;\n    output y;\n}\n";
    parse_non_ascii_character: "network n(x: [1, 8, 8]) {\n    y = x -> conv(4, k=3×3);\n    output y;\n}\n";
    parse_cr_line_endings: "network n(x: [1, 8, 8]) {\r    y = x -> relu\r    output y;\r}\r";
    many_errors_at_once: &format!("{NET}\n    a = x -> convv(8, k=3);\n    b = x -> conv(8, k=0);\n    c = x -> flatten -> linear(10) -> conv(4, k=1);\n    output a, b, c, d;\n}}\n");
}

/// Thirty blocks, each calling the one below twice: 2^30 layers if nothing stopped it.
fn thirty_doubling_blocks() -> String {
    let mut src = String::from("block b0(x) { return x -> relu; }\n");
    for i in 1..=30 {
        src.push_str(&format!(
            "block b{i}(x) {{ return add(x -> b{j}, x -> b{j}); }}\n",
            j = i - 1
        ));
    }
    src.push_str("network n(x: [4]) { y = x -> b30; output y; }\n");
    src
}

warnings! {
    unused_const_and_block: &format!("const width = 8;\nblock spare(x) {{ return x -> relu; }}\n{NET}\n    y = x -> relu;\n    output y;\n}}\n");
    window_drops_rows: "network n(x: [3, 32, 32]) {\n    y = x -> conv(8, k=3, s=2);\n    output y;\n}\n";
    window_drops_columns: "network n(x: [3, 8, 13]) {\n    y = x -> maxpool(k=3, s=2, p=1) -> avgpool(k=2, s=2);\n    output y;\n}\n";
    unused_binding: &format!("{NET}\n    y = x -> relu;\n    z = x -> tanh;\n    output y;\n}}\n");
    dead_binding: &format!("{NET}\n    y = x -> relu;\n    z = y -> tanh;\n    w = z -> sigmoid;\n    output y;\n}}\n");
    unused_block_parameter: &format!("block b(x, c) {{ return x -> relu; }}\n{NET}\n    y = x -> b(3);\n    output y;\n}}\n");
    unused_input: "network n(x: [3, 8, 8], label: class(10)) {\n    y = x -> relu;\n    output y;\n}\n";
    no_output: "network n(x: [3, 8, 8], t: [3, 8, 8]) {\n    y = x -> conv(3, k=1);\n    loss mse(y, t);\n}\n";
}

/// Windows that skip only padding (GoogLeNet's stem), or skip rows by design (a ResNet's 1×1/2
/// projection, a dilation sharing the stride's factor), lose no input: no warning.
#[test]
fn windows_that_lose_no_input_do_not_warn() {
    for op in [
        "conv(64, k=7, s=2, p=3)",
        "maxpool(k=3, s=2, p=1)",
        "conv(8, k=1, s=2)",
        "conv(8, k=3, s=2, dil=2)",
        "maxpool(k=3, s=2, ceil=true)",
    ] {
        let src =
            format!("network n(x: [3, 224, 224]) {{\n    y = x -> {op};\n    output y;\n}}\n");
        let checked = check_with(&[("net/t.net", &src)], None);
        assert!(
            checked.diagnostics.is_empty(),
            "{op}:\n{}",
            checked.render()
        );
    }
}

/// The examples and the fixtures of standard networks (GoogLeNet, LeNet, the autoencoder,
/// the vanishing-gradient networks, ResNet and Inception blocks, VGG) check without a warning.
#[test]
fn the_examples_and_standard_networks_do_not_warn() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("../examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    for fixture in [
        "ae29",
        "heads",
        "inception_mini",
        "nested",
        "resnet_mini",
        "vgg_small",
        "windows",
    ] {
        files.push(root.join(format!("tests/fixtures/torch_shapes/{fixture}.net")));
    }
    for path in files {
        let checked = netc_compiler::check_file(&path, None);
        assert!(
            checked.diagnostics.is_empty(),
            "{}:\n{}",
            path.display(),
            checked.render()
        );
    }
}

/// `allow` drops the warnings of the kinds it names and keeps every error.
#[test]
fn allowed_warnings_are_dropped() {
    let src = "network n(x: [3, 32, 32]) {\n    y = x -> conv(8, k=3, s=2);\n    z = x -> relu;\n    output y;\n}\n";
    let codes = |c: &Checked| c.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>();
    let mut checked = check_with(&[("net/t.net", src)], None);
    assert_eq!(codes(&checked), ["window-drops", "unused"]);
    checked.allow(&["window-drops"]);
    assert_eq!(codes(&checked), ["unused"]);
    checked.allow(&["unused"]);
    assert!(checked.diagnostics.is_empty());
    let mut bad = check_with(
        &[(
            "net/t.net",
            "network n(x: [3]) { y = x -> nope; output y; }",
        )],
        None,
    );
    let before = bad.errors().count();
    bad.allow(&["unused"]);
    assert!(before > 0 && bad.errors().count() == before);
}

#[test]
fn use_cycle() {
    let checked = check_with(
        &[
            (
                "net/a.net",
                "use \"b.net\";\nnetwork n(x: [4]) { y = x -> f; output y; }\n",
            ),
            (
                "net/b.net",
                "use \"sub/c.net\";\nblock f(x) { return x -> g; }\n",
            ),
            (
                "net/sub/c.net",
                "use \"../a.net\";\nblock g(x) { return x -> relu; }\n",
            ),
        ],
        None,
    );
    assert!(checked.has_errors());
    insta::assert_snapshot!("use_cycle", checked.render());
}

#[test]
fn use_missing_file() {
    let checked = check_with(
        &[(
            "net/a.net",
            "use \"blocks.net\";\nnetwork n(x: [4]) { output x; }\n",
        )],
        None,
    );
    assert!(checked.has_errors());
    insta::assert_snapshot!("use_missing_file", checked.render());
}

#[test]
fn error_in_used_file() {
    let checked = check_with(
        &[
            (
                "net/a.net",
                "use \"lib.net\";\nnetwork n(x: [3, 8, 8]) { y = x -> unit(4); output y; }\n",
            ),
            (
                "net/lib.net",
                "block unit(x, c) {\n    return x -> conv(c, k=3) -> linear(c);\n}\n",
            ),
        ],
        None,
    );
    assert!(checked.has_errors());
    insta::assert_snapshot!("error_in_used_file", checked.render());
}

#[test]
fn unknown_network() {
    let checked = check_with(
        &[(
            "net/a.net",
            "network lenet(x: [4]) { output x; }\nnetwork vgg(x: [4]) { output x; }\n",
        )],
        Some("lenett"),
    );
    assert!(checked.has_errors());
    insta::assert_snapshot!("unknown_network", checked.render());
}

#[test]
fn use_brings_blocks_and_consts() {
    let checked = check_with(
        &[
            ("net/a.net", "use \"lib/blocks.net\";\nnetwork n(x: [3, 8, 8]) { y = x -> unit(width); output y; }\n"),
            ("net/lib/blocks.net", "use \"consts.net\";\nblock unit(x, c) { return x -> conv(c, k=3, p=1) -> relu; }\n"),
            ("net/lib/consts.net", "const width = 2 * 8;\n"),
        ],
        None,
    );
    assert!(!checked.has_errors(), "{}", checked.render());
    assert_eq!(
        checked.graphs[0].node(checked.graphs[0].outputs[0].1).shape,
        vec![16, 8, 8]
    );
}

#[test]
fn two_loss_lines_add_up() {
    let src = format!("{NET_L}\n    y = x -> flatten -> linear(10);\n    loss ce(y, label);\n    loss 0.5 * ce(y, label);\n    output y;\n}}\n");
    let checked = check_with(&[("net/t.net", &src)], None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let weights: Vec<f64> = checked.graphs[0].losses.iter().map(|l| l.weight).collect();
    assert_eq!(weights, [1.0, 0.5]);
}

/// An argument that is a chain is named after the parameter it fills, so it cannot collide
/// with the stages of a block's `return` chain (`y.0`, `y.1`).
#[test]
fn argument_chains_are_named_after_their_parameter() {
    let src = "block blk(x, z) { return add(x, z) -> relu; }\n\
               network n(x: [3, 8, 8]) {\n    y = x -> blk(relu(x));\n    w = add(x, x -> tanh) -> invert(of = x -> conv(4, k=3, p=1) as c);\n    output y, w;\n}\n";
    let checked = check_with(&[("net/t.net", src)], None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let g = &checked.graphs[0];
    let mut paths: Vec<&str> = g
        .layers()
        .iter()
        .map(|&n| g.node(n).path.as_str())
        .collect();
    paths.sort();
    assert_eq!(paths, ["c", "w.0", "w.0.1", "w.1", "y.0", "y.1", "y.z"]);
}

/// A ceil-mode pool whose window is larger than its padded input still has one output, as
/// in PyTorch.
#[test]
fn ceil_pool_larger_than_input() {
    let src = "network n(x: [3, 2, 2]) { y = x -> maxpool(k=3, s=2, ceil=true); output y; }\n";
    let checked = check_with(&[("net/t.net", src)], None);
    assert!(!checked.has_errors(), "{}", checked.render());
    let g = &checked.graphs[0];
    assert_eq!(g.node(g.outputs[0].1).shape, vec![3, 1, 1]);
}
