// A parameter without a default after one with a default.
netc::network! {
    block cna(x, k=3, c) {
        return x -> conv(c, k=k);
    }

    network n(image: [1, 28, 28], label: class(10)) {
        logits = image -> cna(c=8) -> flatten -> linear(10);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
