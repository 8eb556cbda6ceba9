//! LeNet written inline with `netc::network!` and trained from `main` on the bundled digits:
//! `cargo run --release --example inline` (trainer flags work too:
//! `cargo run --release --example inline -- --epochs 1`). The network is checked and compiled
//! with the crate; a mistake in it is a compile error at the offending token.

netc::network! {
    const classes = 10;

    network lenet(image: [1, 28, 28], label: class(classes)) {
        c1 = image -> conv(6, k=5, p=2) -> relu -> maxpool(k=2);    // 6×14×14
        c3 = c1 -> conv(16, k=5) -> relu -> maxpool(k=2);           // 16×5×5
        f5 = c3 -> flatten -> linear(120) -> relu;
        f6 = f5 -> linear(84) -> relu;
        logits = f6 -> linear(classes);

        loss ce(logits, label);
        output logits;

        train {
            optimizer = sgd(lr=0.05, momentum=0.9);
            batch = 64;
            epochs = 3;
            seed = 1;
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The trainer's flags from the command line; the run's files go to runs/lenet-inline.
    let mut trainer = netc::train::Trainer::<lenet::Net>::from_args();
    trainer
        .flags_mut()
        .out
        .get_or_insert_with(|| "runs/lenet-inline".into());
    let trained = trainer.run()?;

    // The trained network, on its own: the first bundled digit.
    let data = netc::rt::data::load(
        &netc::rt::data::Source::Idx(netc::train::BUNDLED.into()),
        [1, 28, 28],
        10,
        1,
    )?;
    let digits = data.train;
    let mut ws = lenet::Workspace::new(1);
    let input = lenet::Inputs {
        image: digits.image(0),
        label: &[],
    };
    lenet::forward(&trained.params, &trained.state, &mut ws, &input);
    let scores = lenet::output_logits(&ws);
    let best = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    println!(
        "the first bundled digit: labelled {}, classified as {best}",
        digits.labels[0]
    );
    Ok(())
}
