//! The update service's one decision, as Nebraska makes it: a machine on `track` (its
//! channel) and `board` gets the channel's current release only when that is newer than what
//! it runs (semver), so switching to an older channel never downgrades; an unknown app,
//! channel or board, or a version that is not semver, is an error status. A staged rollout
//! offers the update to a share of machines chosen by a hash of machine-id and version, so
//! every replica decides alike.

use super::catalog::Catalog;
use omaha::{Answer, Request, Version};
use sha2::{Digest, Sha256};

pub const UNKNOWN_APPLICATION: &str = "error-unknownApplication";
pub const REGISTRATION_FAILED: &str = "error-instanceRegistrationFailed";

pub fn decide<'c>(catalog: &'c Catalog, req: &Request, rollout_percent: u8) -> Answer<'c> {
    if omaha::request::bare_app_id(&req.app.app_id)
        != omaha::request::bare_app_id(omaha::COREOS_APP_ID)
    {
        return Answer::Error(UNKNOWN_APPLICATION);
    }
    let Some(release) = catalog.get(&req.app.track, &req.app.board) else {
        return Answer::Error(UNKNOWN_APPLICATION);
    };
    let Ok(running) = Version::parse(&req.app.version) else {
        return Answer::Error(REGISTRATION_FAILED);
    };
    if release.version <= running {
        return Answer::NoUpdate;
    }
    if !in_rollout(&req.app.machine_id, &release.offer.version, rollout_percent) {
        return Answer::NoUpdate;
    }
    Answer::Update(&release.offer)
}

/// Whether `machine` is among the first `percent` of machines for `version`: the first four
/// bytes of SHA-256(machine-id, version) as a number below 10,000, against percent × 100. A
/// new version reshuffles who goes first.
pub fn in_rollout(machine: &str, version: &str, percent: u8) -> bool {
    if percent >= 100 {
        return true;
    }
    let h = Sha256::new()
        .chain_update(machine.as_bytes())
        .chain_update([0])
        .chain_update(version.as_bytes())
        .finalize();
    let bucket = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 10_000;
    bucket < u32::from(percent) * 100
}
