// A mistake in a .net file: the message names the file, line and column.
netc::include_net!("tests/ui/include_error.net");

fn main() {}
