// `repeat` of an op: blocks are repeated, ops are wrapped in one first. Defaults and calls
// by name are accepted on the way.
netc::network! {
    block cna(x, c, k=3, s=1) {
        return x -> conv(c, k=k, s=s, p=k / 2) -> relu;
    }

    network n(image: [1, 28, 28], label: class(10)) {
        c1 = image -> cna(8, s=2) -> repeat(2, cna, 8) -> repeat(2, relu) -> flatten;
        logits = c1 -> linear(10);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
