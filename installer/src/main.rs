//! `coreos-install` (not built yet).

fn main() {
    eprintln!("coreos-install is not built yet");
    std::process::exit(2);
}
