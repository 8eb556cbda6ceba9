// An op the language does not have, with the nearest one suggested.
netc::network! {
    network lenet(image: [1, 28, 28], label: class(10)) {
        c1 = image -> conv2d(6, k=5) -> relu -> flatten;
        logits = c1 -> linear(10);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
