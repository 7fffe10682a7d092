//! The verifying tee: every compressed byte read through it also feeds the signature check,
//! so what is verified is exactly what is decompressed. `finish` is the explicit "the whole
//! stream was read and verified" step (the lesson of CVE-2021-20319: never rely on a
//! decompressor to read its source to EOF).

use crate::signature::StreamVerifier;
use anyhow::{bail, Result};
use std::io::{self, Read};

pub struct VerifyingTee<R> {
    inner: R,
    verifier: Option<StreamVerifier>,
    bytes: u64,
}

impl<R: Read> VerifyingTee<R> {
    /// `verifier` is None only with --insecure and no signature.
    pub fn new(inner: R, verifier: Option<StreamVerifier>) -> Self {
        VerifyingTee {
            inner,
            verifier,
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Called once the decompressor reached the end of its stream: any byte still in the
    /// source is trailing data (an error), then the signature verdict.
    pub fn finish(mut self, what: &str) -> Result<u64> {
        self.check_eof(what)?;
        match self.verifier.take() {
            Some(v) => {
                let who = v
                    .finish()
                    .map_err(|e| anyhow::anyhow!("{what}: signature verification failed: {e}"))?;
                tracing::info!("{what}: good signature by key {}", who.fingerprint);
            }
            None => tracing::warn!("{what}: NOT VERIFIED (--insecure)"),
        }
        Ok(self.bytes)
    }
}

impl<R: Read> VerifyingTee<R> {
    fn check_eof(&mut self, what: &str) -> Result<()> {
        let mut probe = [0u8; 4096];
        let n = self.read(&mut probe)?;
        if n > 0 {
            bail!(
                "{what}: trailing data after the compressed stream at byte {}",
                self.bytes - n as u64
            );
        }
        Ok(())
    }

    /// `finish` without a verdict: only that nothing follows the compressed stream.
    pub fn finish_unverified(mut self, what: &str) -> Result<u64> {
        self.check_eof(what)?;
        Ok(self.bytes)
    }
}

impl<R: Read> Read for VerifyingTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(v) = self.verifier.as_mut() {
            v.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_passes_bytes_through() {
        let mut t = VerifyingTee::new(&b"hello world"[..], None);
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(t.finish("x").unwrap(), 11);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut t = VerifyingTee::new(&b"abcdef"[..], None);
        let mut first = [0u8; 3];
        t.read_exact(&mut first).unwrap();
        let e = t.finish("image.bz2").unwrap_err().to_string();
        assert!(e.contains("trailing data") && e.contains("byte 3"), "{e}");
    }
}
