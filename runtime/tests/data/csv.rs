//! CSV files: a label, then the pixels, one image a line.

use netc_runtime::data::{load, Source};

use crate::{err, folder, gzip};

#[test]
fn csv_files_read_with_or_without_header_and_gzip() {
    let dir = folder("csv");
    let text = "label,p0,p1,p2,p3\n1, 0, 255, 51, 102\n0,255,255,0,0\n";
    std::fs::write(dir.join("a.csv"), text).unwrap();
    std::fs::write(dir.join("a.csv.gz"), gzip(text.as_bytes())).unwrap();
    for file in ["a.csv", "a.csv.gz"] {
        let got = load(&Source::Csv(dir.join(file)), [1, 2, 2], 2, 0).unwrap();
        assert_eq!(got.train.labels, [1, 0]);
        assert_eq!(got.train.image(0), &[0.0, 1.0, 0.2, 0.4]);
        let path = dir.join(file).display().to_string();
        assert_eq!(
            got.notes,
            [
                format!("{path}: line 1 is a header (its label column is label): skipped"),
                format!("{path}: the pixels are whole numbers from 0 to 255: divided by 255"),
            ]
        );
    }
    // Values already in [0, 1] stay as they are, and the note says so.
    let b = dir.join("b.csv");
    std::fs::write(&b, "1,0.5,0.25,0,1\n").unwrap();
    let got = load(&Source::Csv(b.clone()), [1, 2, 2], 2, 0).unwrap();
    assert_eq!(got.train.image(0), &[0.5, 0.25, 0.0, 1.0]);
    assert_eq!(
        got.notes,
        [format!(
            "{}: the pixels are all in [0, 1]: used as they are",
            b.display()
        )]
    );
    for (bad, want) in [
        (
            "1,0,0,0\n",
            "line 1: 3 pixels, but the network's input [1, 2, 2] takes 4",
        ),
        (
            "2,0,0,0,0\n",
            "line 1: label 2 is not a class below the network's 2",
        ),
        (
            "1,0,0,0,0\n0,0,x,0,0\n",
            "line 2, column 3: `x` is not a number",
        ),
        ("label,a,b,c,d\n", "holds no images"),
        ("1,0,-3,0,0\n", "line 1, column 3: pixel -3 is negative"),
    ] {
        std::fs::write(dir.join("bad.csv"), bad).unwrap();
        let e = err(load(&Source::Csv(dir.join("bad.csv")), [1, 2, 2], 2, 0));
        assert!(e.contains(want), "{bad:?}: {e}");
    }
}

/// Issue 12 item 14: the pixels' scale is decided from the whole file. One pixel of 1.5 among
/// fractions does not make the file bytes; it is an error that says where each kind was seen.
#[test]
fn csv_pixel_scale_is_decided_from_the_whole_file() {
    let dir = folder("csv-scale");
    let path = dir.join("a.csv");
    let refused = |text: &str| {
        std::fs::write(&path, text).unwrap();
        err(load(&Source::Csv(path.clone()), [1, 2, 2], 2, 0))
    };
    let help =
        "\n  help: write every pixel in [0, 1], or every pixel as a whole number from 0 to 255";
    assert_eq!(
        refused("1,0.5,0.25,0,1\n0,0,1.5,0.75,0\n"),
        format!(
            "{}: the pixels are neither all in [0, 1] (line 2, column 3 holds 1.5) nor all \
             whole numbers from 0 to 255 (line 1, column 2 holds 0.5){help}",
            path.display()
        )
    );
    assert_eq!(
        refused("1,0,255,300,7\n"),
        format!(
            "{}: the pixels are neither all in [0, 1] (line 1, column 3 holds 255) nor all \
             whole numbers from 0 to 255 (line 1, column 4 holds 300){help}",
            path.display()
        )
    );
}

/// Issue 12 item 14: only a first line whose label column is a name is a header; a first data
/// row with a bad field is reported like any other row.
#[test]
fn a_bad_first_row_is_not_taken_for_a_header() {
    let dir = folder("csv-first-row");
    let path = dir.join("a.csv");
    std::fs::write(&path, "1,0,x,0,0\n0,0,0,0,0\n").unwrap();
    let e = err(load(&Source::Csv(path.clone()), [1, 2, 2], 2, 0));
    assert_eq!(
        e,
        format!(
            "{}: line 1, column 3: `x` is not a number\n  \
             help: each line is a label then C·H·W pixels, separated by commas; a header line \
             names the label column first",
            path.display()
        )
    );
    std::fs::write(&path, "label,0,x,0,0\n0,0,0,0,0\n").unwrap();
    let got = load(&Source::Csv(path.clone()), [1, 2, 2], 2, 0).unwrap();
    assert_eq!(got.train.labels, [0]);
}

/// Issue 12 item 14: every bad row is reported with its line number (the first 20 of them,
/// then how many more), negative and non-finite pixels included.
#[test]
fn every_bad_csv_row_is_reported_with_its_line() {
    let dir = folder("csv-bad-rows");
    let path = dir.join("a.csv");
    let mut text = String::from("label,a,b,c,d\n1,0,0,0,0\n");
    text += "1,0,-3,0,0\n1,0,nan,0,0\n1,0,0,inf,0\n1,0,0,0\n7,0,0,0,0\n0.5,0,0,0,0\n1,0,x,y,0\n\n";
    text += &"1,-1,0,0,0\n".repeat(15);
    std::fs::write(&path, text).unwrap();
    let e = err(load(&Source::Csv(path.clone()), [1, 2, 2], 2, 0));
    let mut want = format!(
        "{}: 22 bad lines:\n  \
         line 3, column 3: pixel -3 is negative\n  \
         line 4, column 3: pixel nan is not a finite number\n  \
         line 5, column 4: pixel inf is not a finite number\n  \
         line 6: 3 pixels, but the network's input [1, 2, 2] takes 4\n  \
         line 7: label 7 is not a class below the network's 2\n  \
         line 8: label 0.5 is not a class below the network's 2\n  \
         line 9, column 3: `x` is not a number\n",
        path.display()
    );
    for line in 11..24 {
        want += &format!("  line {line}, column 2: pixel -1 is negative\n");
    }
    want += "  … and 2 more\n  help: each line is a label then C·H·W pixels, separated by \
             commas; a header line names the label column first";
    assert_eq!(e, want);
}
