//! Pass 1: read the whole payload once and prove it good before anything is written — the
//! header, the manifest's layout, every blob's SHA-256, the RSA signature over
//! `[0, 20 + n + signatures_offset)`, and that nothing follows the signature blob. Memory stays
//! bounded by the manifest and one read buffer, whatever the payload's size.

use crate::plan::{PayloadHead, Plan};
use crate::stream::PayloadStream;
use crate::update_metadata::{DeltaArchiveManifest, Signatures};
use crate::PayloadError;
use keys::PayloadPublicKey;
use prost::Message;
use sha2::{Digest, Sha256};
use std::io::Read;

/// The `Signatures.Signature.version` that update_engine checks (`kSignatureMessageCurrentVersion`).
pub const SIGNATURE_VERSION: u32 = 2;
const READ_BUF: usize = 1 << 20;

/// What a verified payload installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadInfo {
    pub partition_size: u64,
    pub partition_sha256: [u8; 32],
    pub kernel_size: u64,
    pub kernel_sha256: [u8; 32],
    /// From the manifest's CoreOS release field; None in payloads made by other tools.
    pub board: Option<String>,
    pub version: Option<String>,
    pub channel: Option<String>,
    /// Bytes of the whole payload file.
    pub payload_len: u64,
}

/// A payload whose every byte was checked against its signature; the input of `apply`.
#[derive(Clone, Debug)]
pub struct Verified {
    pub(crate) head: PayloadHead,
    /// SHA-256 of the header and manifest, to notice a file that changed before pass 2.
    pub(crate) head_sha256: [u8; 32],
    info: PayloadInfo,
}

impl Verified {
    pub fn info(&self) -> &PayloadInfo {
        &self.info
    }

    pub fn manifest(&self) -> &DeltaArchiveManifest {
        &self.head.manifest
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.head.plan
    }
}

/// Pass 1 (see the module documentation). Writes nothing.
pub fn verify<R: Read>(reader: R, key: &PayloadPublicKey) -> Result<Verified, PayloadError> {
    verify_with_progress(reader, key, &mut |_| {})
}

/// [`verify`], calling `progress` with the payload bytes read so far.
pub fn verify_with_progress<R: Read>(
    reader: R,
    key: &PayloadPublicKey,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, PayloadError> {
    let mut stream = PayloadStream::new(reader);
    let mut signed = Sha256::new();
    let head = stream.read_head(&mut signed)?;
    let head_sha256: [u8; 32] = signed.clone().finalize().into();
    let blobs_start = head.header.blobs_start();
    progress(stream.pos());

    let mut buf = vec![0u8; READ_BUF];
    for op in &head.plan.ops {
        let mut op_hash = Sha256::new();
        let mut left = op.data.end - op.data.start;
        while left > 0 {
            let n = left.min(READ_BUF as u64) as usize;
            stream.read_exact(&mut buf[..n], &format!("the data of {}", op.name))?;
            op_hash.update(&buf[..n]);
            signed.update(&buf[..n]);
            left -= n as u64;
        }
        if <[u8; 32]>::from(op_hash.finalize()) != op.sha256 {
            return Err(PayloadError::OpHash {
                op: op.name,
                at: blobs_start + op.data.start..blobs_start + op.data.end,
            });
        }
        progress(stream.pos());
    }

    let sig_at = blobs_start + head.plan.signatures.start..blobs_start + head.plan.signatures.end;
    let mut sig_blob = vec![0u8; (sig_at.end - sig_at.start) as usize];
    stream.read_exact(&mut sig_blob, "the signature blob")?;
    if !stream.at_end()? {
        return Err(PayloadError::TrailingData { at: sig_at.end });
    }
    progress(stream.pos());
    let sigs =
        Signatures::decode(&sig_blob[..]).map_err(|source| PayloadError::SignatureDecode {
            at: sig_at.clone(),
            source,
        })?;
    let digest: [u8; 32] = signed.finalize().into();
    let ours = sigs
        .signatures
        .iter()
        .find(|s| s.version == Some(SIGNATURE_VERSION))
        .ok_or_else(|| PayloadError::NoSignature {
            found: sigs.signatures.iter().filter_map(|s| s.version).collect(),
        })?;
    key.verify_sha256(&digest, ours.data.as_deref().unwrap_or_default())
        .map_err(PayloadError::Signature)?;

    let plan = &head.plan;
    let release = plan.release.clone().unwrap_or_default();
    let info = PayloadInfo {
        partition_size: plan.partition.size,
        partition_sha256: plan.partition.sha256,
        kernel_size: plan.kernel.size,
        kernel_sha256: plan.kernel.sha256,
        board: release.board,
        version: release.version,
        channel: release.channel,
        payload_len: sig_at.end,
    };
    Ok(Verified {
        head,
        head_sha256,
        info,
    })
}
