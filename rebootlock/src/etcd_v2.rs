//! etcd's v2 keys API, as locksmith uses it (`lock/etcd.go`): `GET /v2/keys/KEY`, create with
//! `PUT …?prevExist=false` (error 105 when it exists), compare-and-swap with
//! `PUT …?prevIndex=N` (error 101 when another writer came first). Form-encoded values, JSON
//! replies. etcd 3.4 serves it only when started with `--enable-v2=true`; 3.6 not at all.

use crate::store::{Revision, Store, StoreError};
use serde::Deserialize;

/// etcd v2 error codes (`etcd/error/error.go`).
const KEY_NOT_FOUND: u64 = 100;
const COMPARE_FAILED: u64 = 101;
const NODE_EXISTS: u64 = 105;

pub struct EtcdV2 {
    endpoints: Vec<String>,
    key: String,
    http: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct Reply {
    node: Option<Node>,
    #[serde(rename = "errorCode")]
    error_code: Option<u64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Node {
    value: Option<String>,
    #[serde(rename = "modifiedIndex")]
    modified_index: u64,
}

impl EtcdV2 {
    pub fn new(endpoints: &[String], key: &str) -> Result<EtcdV2, StoreError> {
        let (endpoints, key, http) = crate::store::connect(endpoints, key)?;
        Ok(EtcdV2 {
            endpoints,
            key,
            http,
        })
    }

    /// One request to the first endpoint that answers: its status and body.
    fn call(
        &self,
        what: &str,
        build: impl Fn(&str) -> reqwest::blocking::RequestBuilder,
    ) -> Result<(u16, Reply, String), StoreError> {
        let mut errors = Vec::new();
        for ep in &self.endpoints {
            let url = format!("{ep}/v2/keys/{}", self.key);
            match build(&url).send() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().map_err(|e| {
                        StoreError::Unreachable(format!("{what} {url}: reading the reply: {e}"))
                    })?;
                    return match serde_json::from_str::<Reply>(&body) {
                        Ok(reply) => Ok((status, reply, url)),
                        // etcd 3.4 without --enable-v2 answers the v2 path with a plain 404.
                        Err(_) if status == 404 => Err(StoreError::WrongApi(format!(
                            "etcd at {ep} does not serve the v2 keys API that locksmith uses \
                             ({url}: HTTP 404 {:?}): start etcd with --enable-v2=true, or choose \
                             the v3 API (LOCKSMITHD_ETCD_API=v3)",
                            body.trim()
                        ))),
                        Err(e) => Err(StoreError::Protocol(format!(
                            "{what} {url}: HTTP {status}, not an etcd v2 reply ({e}): {:?}",
                            body.chars().take(200).collect::<String>()
                        ))),
                    };
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        Err(StoreError::Unreachable(format!(
            "{what}: no etcd endpoint answered: {}",
            errors.join("; ")
        )))
    }

    fn refused(
        what: &str,
        url: &str,
        status: u16,
        code: Option<u64>,
        message: Option<&str>,
    ) -> StoreError {
        StoreError::Protocol(format!(
            "{what} {url}: HTTP {status}, etcd error {}: {}",
            code.unwrap_or(0),
            message.unwrap_or("")
        ))
    }
}

impl Store for EtcdV2 {
    fn get(&self) -> Result<Option<(String, Revision)>, StoreError> {
        let (status, reply, url) = self.call("GET", |u| self.http.get(u))?;
        match (status, reply.error_code, reply.node) {
            (200, None, Some(node)) => Ok(Some((
                node.value.unwrap_or_default(),
                Revision(node.modified_index),
            ))),
            (404, Some(KEY_NOT_FOUND), _) => Ok(None),
            (status, code, _) => Err(Self::refused(
                "GET",
                &url,
                status,
                code,
                reply.message.as_deref(),
            )),
        }
    }

    fn create(&self, value: &str) -> Result<bool, StoreError> {
        let (status, reply, url) = self.call("PUT", |u| {
            self.http
                .put(format!("{u}?prevExist=false"))
                .form(&[("value", value)])
        })?;
        match (status, reply.error_code) {
            (200 | 201, None) => Ok(true),
            (_, Some(NODE_EXISTS)) => Ok(false),
            (_, code) => Err(Self::refused(
                "PUT (create)",
                &url,
                status,
                code,
                reply.message.as_deref(),
            )),
        }
    }

    fn swap(&self, value: &str, prev: Revision) -> Result<bool, StoreError> {
        let (status, reply, url) = self.call("PUT", |u| {
            self.http
                .put(format!("{u}?prevIndex={}", prev.0))
                .form(&[("value", value)])
        })?;
        match (status, reply.error_code) {
            (200 | 201, None) => Ok(true),
            (_, Some(COMPARE_FAILED)) => Ok(false),
            (_, code) => Err(Self::refused(
                "PUT (compare-and-swap)",
                &url,
                status,
                code,
                reply.message.as_deref(),
            )),
        }
    }
}
