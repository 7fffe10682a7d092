//! `coreos-build inspect` (not built yet).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("coreos-build inspect is not built yet")
}
