//! `coreos-build image` (not built yet).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(args: Args, ui: &crate::progress::Ui) -> anyhow::Result<()> {
    let _ = (args, ui);
    anyhow::bail!("coreos-build image is not built yet")
}
