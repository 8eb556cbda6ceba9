// A file that is not there.
netc::include_net!("tests/ui/no_such_file.net");

fn main() {}
