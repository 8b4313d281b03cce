//! A small blocking HTTP client for the vault's REST API.

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::Agent;

pub struct Client {
    base: String,
    token: Option<String>,
    agent: Agent,
}

/// An error reply, decoded from its problem+json body when there is one.
pub fn describe_error(status: u16, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let title = v.get("title").and_then(Value::as_str).unwrap_or("error");
            match v.get("detail").and_then(Value::as_str) {
                Some(d) => format!("{status} {title}: {d}"),
                None => format!("{status} {title}"),
            }
        }
        Err(_) => format!("{status}: {}", body.trim()),
    }
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Client {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Client {
            base: server.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    fn finish(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), String> {
        let mut resp = resp.map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("reading the reply: {e}"))?;
        if status >= 400 {
            return Err(describe_error(status, &body));
        }
        Ok((status, body))
    }

    /// GET returning the body text.
    pub fn get_text(&self, path: &str, accept: &str) -> Result<String, String> {
        let req = self
            .auth(self.agent.get(self.url(path)))
            .header("Accept", accept);
        self.finish(req.call()).map(|(_, b)| b)
    }

    /// GET returning JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let text = self.get_text(path, "application/json")?;
        serde_json::from_str(&text).map_err(|e| format!("unexpected reply from {path}: {e}"))
    }

    /// GET streaming the body into `out`.
    pub fn get_to(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, String> {
        let req = self.auth(self.agent.get(self.url(path)));
        let mut resp = req
            .call()
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(describe_error(status, &body));
        }
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, out).map_err(|e| format!("downloading: {e}"))
    }

    /// POSTs a payload streamed from `body` with the given headers.
    pub fn post_stream(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &mut dyn Read,
    ) -> Result<(u16, Value), String> {
        let mut req = self.auth(self.agent.post(self.url(path)));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let (status, text) = self.finish(req.send(ureq::SendBody::from_reader(body)))?;
        let v = serde_json::from_str(&text).map_err(|e| format!("unexpected reply: {e}"))?;
        Ok((status, v))
    }
}

/// Percent-encodes a query or path component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
