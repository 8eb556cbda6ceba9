// A mistake in a file that the included file `use`s: the message names that file.
netc::include_net!("tests/ui/include_use_error.net");

fn main() {}
