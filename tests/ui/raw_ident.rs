// Raw identifiers reach the language as written: `r#block` is the name `block` (a keyword of
// the language, as torchvision names a block's body), and a mistake near it is quoted raw.
netc::network! {
    network net(image: [1, 8, 8], label: class(2)) {
        r#block = image -> conv(4, k=3, p=1) -> relu;
        logits = r#blok -> flatten -> linear(2);
        loss ce(logits, label);
        output logits;
    }
}

fn main() {}
