//! The user's configuration: checked before anything is written (`UserConfig::load`), then
//! put into the installed filesystems without mounting them (`inject`).

mod inject;
mod validate;

pub use inject::inject;
pub use validate::{check_cloud_config, UserConfig};
