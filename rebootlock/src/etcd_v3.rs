//! etcd's v3 API through its JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`; base64 keys and
//! values, 64-bit numbers as strings), for etcd 3.6 and later, which have no v2 API. The same
//! key and JSON as locksmith's v2 store, but a separate store inside etcd: v2 and v3 data never
//! meet, so the API is chosen (`LOCKSMITHD_ETCD_API`), never guessed.

use crate::store::{Revision, Store, StoreError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

pub struct EtcdV3 {
    endpoints: Vec<String>,
    key: String,
    http: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct RangeReply {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: String,
    mod_revision: String,
}

#[derive(Deserialize)]
struct TxnReply {
    /// proto3 JSON leaves `false` out.
    #[serde(default)]
    succeeded: bool,
}

impl EtcdV3 {
    pub fn new(endpoints: &[String], key: &str) -> Result<EtcdV3, StoreError> {
        let (endpoints, key, http) = crate::store::connect(endpoints, key)?;
        Ok(EtcdV3 {
            endpoints,
            key,
            http,
        })
    }

    fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, StoreError> {
        let mut errors = Vec::new();
        for ep in &self.endpoints {
            let url = format!("{ep}{path}");
            match self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
            {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().map_err(|e| {
                        StoreError::Unreachable(format!("{url}: reading the reply: {e}"))
                    })?;
                    if status == 404 {
                        return Err(StoreError::WrongApi(format!(
                            "etcd at {ep} does not serve the v3 JSON API ({url}: HTTP 404): use \
                             etcd 3.4 or later, or choose the v2 keys API (LOCKSMITHD_ETCD_API=v2)"
                        )));
                    }
                    if status != 200 {
                        return Err(StoreError::Protocol(format!(
                            "{url}: HTTP {status}: {:?}",
                            text.chars().take(200).collect::<String>()
                        )));
                    }
                    return serde_json::from_str(&text).map_err(|e| {
                        StoreError::Protocol(format!("{url}: not an etcd v3 reply ({e})"))
                    });
                }
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        Err(StoreError::Unreachable(format!(
            "no etcd endpoint answered: {}",
            errors.join("; ")
        )))
    }

    fn put_if(
        &self,
        target: &str,
        field: &str,
        revision: u64,
        value: &str,
    ) -> Result<bool, StoreError> {
        let key = B64.encode(&self.key);
        let reply: TxnReply = self.post(
            "/v3/kv/txn",
            &json!({
                "compare": [{"key": key, "result": "EQUAL", "target": target, field: revision.to_string()}],
                "success": [{"request_put": {"key": key, "value": B64.encode(value)}}],
            }),
        )?;
        Ok(reply.succeeded)
    }
}

impl Store for EtcdV3 {
    fn get(&self) -> Result<Option<(String, Revision)>, StoreError> {
        let reply: RangeReply =
            self.post("/v3/kv/range", &json!({ "key": B64.encode(&self.key) }))?;
        let Some(kv) = reply.kvs.into_iter().next() else {
            return Ok(None);
        };
        let value = B64
            .decode(&kv.value)
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| {
                StoreError::Protocol(format!("{}: the value is not base64 UTF-8", self.key))
            })?;
        let rev = kv.mod_revision.parse().map_err(|_| {
            StoreError::Protocol(format!(
                "mod_revision {:?} is not a number",
                kv.mod_revision
            ))
        })?;
        Ok(Some((value, Revision(rev))))
    }

    fn create(&self, value: &str) -> Result<bool, StoreError> {
        self.put_if("CREATE", "create_revision", 0, value)
    }

    fn swap(&self, value: &str, prev: Revision) -> Result<bool, StoreError> {
        self.put_if("MOD", "mod_revision", prev.0, value)
    }
}
