// A linear layer needs a flat input: the error is at `linear`, not at the macro call.
netc::network! {
    network lenet(image: [1, 28, 28], label: class(10)) {
        c1 = image -> conv(6, k=5) -> relu;
        logits = c1 -> linear(10);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
