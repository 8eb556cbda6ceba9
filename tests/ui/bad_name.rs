// A value that was never bound.
netc::network! {
    network lenet(image: [1, 28, 28], label: class(10)) {
        c1 = imag -> conv(6, k=5) -> relu -> flatten;
        logits = c1 -> linear(10);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
