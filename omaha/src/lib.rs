//! The Omaha v3 update protocol as CoreOS's `update_engine` and Flatcar's Nebraska speak it,
//! shared by the update client (`coreos-update check`/`agent`) and the update service
//! (`coreos-build serve`) so the two cannot drift:
//!
//! - `request`: the update check and event requests, written as update_engine writes them and
//!   read as a server reads them;
//! - `response`: the reply, read as update_engine reads it (every refusal a numbered error)
//!   and written as Nebraska writes it;
//! - `codes`: event types, results and error codes, numbered as update_engine numbers them;
//! - `version`: the release order (semver) both sides use, so "never downgrade" means one thing.
//!
//! Formats and fixtures: `../shared/reference/omaha-locksmith.md`.

#![forbid(unsafe_code)]

pub mod codes;
pub mod request;
pub mod response;
pub mod version;
mod xml;

pub use codes::{ErrorCode, EventResult, EventType};
pub use request::{App, Event, InstallSource, Request, RequestError, COREOS_APP_ID};
pub use response::{read_update_check, Answer, Offer, Reply, ResponseError, Update, UpdateCheck};
pub use version::{Version, VersionError};
pub use xml::{XmlError, MAX_DOCUMENT};
