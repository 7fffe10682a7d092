//! `coreos-build vm` (not built yet).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(args: Args, ui: &crate::progress::Ui) -> anyhow::Result<()> {
    let _ = (args, ui);
    anyhow::bail!("coreos-build vm is not built yet")
}
