//! `[[witness]]` in `evault serve`'s config: the C2SP tlog-witness
//! witnesses asked to cosign each evidence checkpoint, and the HTTP
//! transport that reaches them (a time limit and a size cap on every
//! answer, since a witness is another party's server).

use std::sync::Arc;
use std::time::Duration;

use evault_vault::{WitnessResponse, WitnessSetup, WitnessSpec, WitnessTransport};
use serde::Deserialize;

use crate::config::parse_duration;

/// How long one `add-checkpoint` request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read: cosignature lines are a few KiB at most.
const MAX_ANSWER: u64 = 64 * 1024;

/// One `[[witness]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name (its cosigner key's name).
    pub name: String,
    /// Its submission prefix; `add-checkpoint` is appended (C2SP
    /// tlog-witness), unless the URL already ends with it.
    pub url: String,
    /// Its cosigner verifier keys (Ed25519 `cosignature/v1` or ML-DSA-44).
    pub keys: Vec<String>,
}

/// The vault's witness setup from the config file, if it names witnesses.
pub fn setup(
    witnesses: &[WitnessConfig],
    threshold: Option<usize>,
    interval: Option<&str>,
) -> Result<Option<WitnessSetup>, String> {
    if witnesses.is_empty() {
        if threshold.is_some() {
            return Err("witness_threshold is set, but no [[witness]] is configured".into());
        }
        return Ok(None);
    }
    let specs = witnesses
        .iter()
        .map(|w| {
            let url = w.url.trim_end_matches('/');
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "witness {}: url {:?} is not an http(s) URL",
                    w.name, w.url
                ));
            }
            let url = if url.ends_with("/add-checkpoint") {
                url.to_string()
            } else {
                format!("{url}/add-checkpoint")
            };
            Ok(WitnessSpec {
                name: w.name.clone(),
                url,
                keys: w.keys.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let interval = match interval {
        Some(r) => match parse_duration("witness_interval", r)? {
            d if d.is_zero() => return Err("witness_interval must not be zero".into()),
            d => d,
        },
        None => Duration::from_secs(10),
    };
    Ok(Some(WitnessSetup {
        threshold: threshold.unwrap_or(specs.len()),
        witnesses: specs,
        transport: Arc::new(HttpTransport::new()),
        interval,
    }))
}

/// `add-checkpoint` over HTTP(S).
struct HttpTransport {
    agent: ureq::Agent,
}

impl HttpTransport {
    fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .max_redirects(0)
            .build()
            .into();
        HttpTransport { agent }
    }
}

impl WitnessTransport for HttpTransport {
    fn post(&self, url: &str, body: &[u8]) -> Result<WitnessResponse, String> {
        let mut resp = self
            .agent
            .post(url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(body)
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok(WitnessResponse {
            status,
            content_type,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(url: &str) -> WitnessConfig {
        WitnessConfig {
            name: "witness.example/w".into(),
            url: url.into(),
            keys: vec!["k".into()],
        }
    }

    #[test]
    fn urls_get_add_checkpoint_once_and_threshold_defaults_to_all() {
        let s = setup(
            &[
                w("https://a.example/w/"),
                w("http://b.example/add-checkpoint"),
            ],
            None,
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.witnesses[0].url, "https://a.example/w/add-checkpoint");
        assert_eq!(s.witnesses[1].url, "http://b.example/add-checkpoint");
        assert_eq!(s.threshold, 2);
        assert_eq!(s.interval, Duration::from_secs(10));
        let s = setup(&[w("https://a.example")], Some(1), Some("2s"))
            .unwrap()
            .unwrap();
        assert_eq!((s.threshold, s.interval), (1, Duration::from_secs(2)));
    }

    #[test]
    fn refusals() {
        assert!(setup(&[], None, None).unwrap().is_none());
        let e = setup(&[], Some(1), None).unwrap_err();
        assert!(e.contains("no [[witness]]"), "{e}");
        let e = setup(&[w("ftp://a.example")], None, None).unwrap_err();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = setup(&[w("https://a.example")], None, Some("soon")).unwrap_err();
        assert!(e.contains("witness_interval"), "{e}");
        let e = setup(&[w("https://a.example")], None, Some("0s")).unwrap_err();
        assert!(e.contains("must not be zero"), "{e}");
    }
}
