// An argument the op does not take.
netc::network! {
    network lenet(image: [1, 28, 28], label: class(10)) {
        c1 = image -> conv(6, kernel=5) -> relu -> flatten;
        logits = c1 -> linear(10);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
