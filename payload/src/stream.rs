//! A payload read front to back, once, that knows its byte offset: a short read becomes
//! "truncated at byte N", and reads of the header and manifest are shared by both passes.

use crate::header::{Header, HEADER_LEN};
use crate::plan::PayloadHead;
use crate::PayloadError;
use sha2::{Digest, Sha256};
use std::io::Read;

pub struct PayloadStream<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> PayloadStream<R> {
    pub fn new(inner: R) -> PayloadStream<R> {
        PayloadStream { inner, pos: 0 }
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Fill `buf`; `what` names what was being read if the payload ends first.
    pub fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), PayloadError> {
        let needed = self.pos + buf.len() as u64;
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(PayloadError::Truncated {
                        at: self.pos + got as u64,
                        needed,
                        what: what.to_string(),
                    })
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PayloadError::Read {
                        at: self.pos + got as u64,
                        source,
                    })
                }
            }
        }
        self.pos = needed;
        Ok(())
    }

    /// Whether the payload ends here (reads at most one byte).
    pub fn at_end(&mut self) -> Result<bool, PayloadError> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PayloadError::Read {
                        at: self.pos,
                        source,
                    })
                }
            }
        }
    }

    /// Read the header and the manifest's bytes, feeding both to `signed` (the signature
    /// covers them).
    pub fn read_head_bytes(
        &mut self,
        signed: &mut Sha256,
    ) -> Result<(Header, Vec<u8>), PayloadError> {
        let mut h = [0u8; HEADER_LEN as usize];
        self.read_exact(&mut h, "the header")?;
        let header = Header::parse(&h)?;
        let mut manifest = vec![0u8; header.manifest_len as usize];
        self.read_exact(
            &mut manifest,
            &format!("the manifest of {} bytes", header.manifest_len),
        )?;
        signed.update(h);
        signed.update(&manifest);
        Ok((header, manifest))
    }

    /// [`Self::read_head_bytes`], then decode and check the manifest.
    pub fn read_head(&mut self, signed: &mut Sha256) -> Result<PayloadHead, PayloadError> {
        let (header, manifest) = self.read_head_bytes(signed)?;
        PayloadHead::decode(header, &manifest)
    }
}
