//! `coreos-build mkfs ext4` (not built yet).

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// ext4 from a directory tree.
    Ext4(Ext4Args),
}

#[derive(clap::Args, Debug)]
pub struct Ext4Args {}

pub fn run(cmd: Command, ui: &crate::progress::Ui) -> anyhow::Result<()> {
    let _ = (cmd, ui);
    anyhow::bail!("coreos-build mkfs is not built yet")
}
