//! Transposed convolution sizes. `invert(of=c)` must give back exactly the size `c` was
//! given, for every size, kernel, stride and padding (the lecture's claim, with PyTorch's
//! output padding for the sizes a strided conv loses); `conv_t` follows
//! `(H-1)s - 2p + k + op`.

use std::path::Path;

use netc_compiler::{check_source, Report};

fn shapes_of(src: &str) -> Vec<(String, Vec<usize>)> {
    let checked = check_source("t.net", src, Path::new("t.net"), None);
    assert!(!checked.has_errors(), "{src}\n{}", checked.render());
    Report::new(&checked.graphs[0])
        .layers
        .iter()
        .map(|l| (l.path.clone(), l.output.clone()))
        .collect()
}

#[test]
fn invert_restores_every_size() {
    let mut cases = 0;
    for d in 1..=40usize {
        for k in 1..=7usize {
            for s in 1..=4usize {
                for p in 0..k {
                    if d + 2 * p < k {
                        continue; // no conv output
                    }
                    let o = (d + 2 * p - k) / s + 1;
                    // Rectangular input: the same rule must hold per dimension.
                    let w = d + 3;
                    let src = format!(
                        "network n(x: [2, {d}, {w}]) {{
                            c = x -> conv(5, k={k}, s={s}, p={p});
                            y = c -> invert(of=c);
                            output y;
                        }}"
                    );
                    let shapes = shapes_of(&src);
                    let ow = (w + 2 * p - k) / s + 1;
                    assert_eq!(shapes[0], ("c".to_string(), vec![5, o, ow]), "{src}");
                    assert_eq!(shapes[1], ("y".to_string(), vec![2, d, w]), "{src}");
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 3000, "{cases}");
}

#[test]
fn conv_t_follows_its_formula() {
    for h in 1..=12usize {
        for k in 1..=5usize {
            for s in 1..=3usize {
                for p in 0..k {
                    for op in 0..s {
                        let full = (h - 1) * s + k + op;
                        if full <= 2 * p {
                            continue;
                        }
                        let src = format!(
                            "network n(x: [3, {h}, {h}]) {{
                                y = x -> conv_t(4, k={k}, s={s}, p={p}, op={op});
                                output y;
                            }}"
                        );
                        let out = full - 2 * p;
                        assert_eq!(shapes_of(&src)[0].1, vec![4, out, out], "{src}");
                    }
                }
            }
        }
    }
}

#[test]
fn conv_t_counts_weights_at_input_positions() {
    let checked = check_source(
        "t.net",
        "network n(x: [8, 7, 5]) { y = x -> conv_t(3, k=[4, 2], s=2, p=1, op=1); output y; }",
        Path::new("t.net"),
        None,
    );
    assert!(!checked.has_errors(), "{}", checked.render());
    let r = Report::new(&checked.graphs[0]);
    let l = &r.layers[0];
    // weights [in, out, kh, kw] = 8·3·4·2; MACs = weights · H · W of the input.
    assert_eq!(l.cost.weights, 8 * 3 * 4 * 2);
    assert_eq!(l.cost.params(), 8 * 3 * 4 * 2 + 3);
    assert_eq!(l.cost.macs, 8 * 3 * 4 * 2 * 7 * 5);
    // (7-1)·2 - 2 + 4 + 1 = 15, (5-1)·2 - 2 + 2 + 1 = 9
    assert_eq!(l.output, vec![3, 15, 9]);
}
