//! `coreos-install` as a library: the stages of an install (source, verify, decompress,
//! hold-back writer, configure) and the two commands built from them. `main.rs` only parses
//! the command line and dispatches; the fuzz targets (`fuzz/`) reach the parsers through here.

pub mod cli;
pub mod configure;
pub mod decompress;
pub mod download;
mod finish;
pub mod image;
pub mod install;
mod installed_version;
pub mod iso;
mod pipeline;
mod signature;
pub mod target;
mod verify;
