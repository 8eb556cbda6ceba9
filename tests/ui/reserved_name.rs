// An input named `self`: Rust cannot take it for a field, not even as `r#self`.
netc::network! {
    network net(self: [1, 8, 8], label: class(2)) {
        logits = self -> flatten -> linear(2);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
