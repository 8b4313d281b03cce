//! A small blocking HTTP client for the vault's REST API.
//!
//! Every failure is classified once, here: the address is malformed
//! (usage, 2), nothing that speaks the REST API answers there (4), or the
//! server answered with an error (3) — quoted from its problem+json body,
//! with its request id, and a hint of what to do.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::Agent;

use crate::error::{CliError, Exit, io_text};

pub struct Client {
    base: String,
    token: Option<String>,
    agent: Agent,
    /// `x-request-id` of every reply this client got: `audit tail -f`
    /// leaves its own polls out of what it prints.
    request_ids: RefCell<HashSet<String>>,
}

/// A reply with a success status.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Checks a server address: `http://` or `https://`, a host, nothing else.
pub fn check_server_url(server: &str) -> Result<String, CliError> {
    let hint_for = |s: &str| {
        format!(
            "give the vault's REST address with its scheme, e.g. http://{s} (https:// if it \
             serves TLS), in --server or EVAULT_SERVER"
        )
    };
    let Some((scheme, rest)) = server.split_once("://") else {
        return Err(CliError::usage(format!(
            "server address {server:?} has no http:// or https://"
        ))
        .hint(hint_for(server)));
    };
    if scheme != "http" && scheme != "https" {
        return Err(CliError::usage(format!(
            "server address {server:?}: the scheme must be http or https, not {scheme:?}"
        ))
        .hint(hint_for(rest)));
    }
    let uri: ureq::http::Uri = server
        .parse()
        .map_err(|e| CliError::usage(format!("server address {server:?}: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(CliError::usage(format!(
            "server address {server:?} has no host"
        )));
    }
    Ok(server.trim_end_matches('/').to_string())
}

/// What to do about an error status, when the problem's detail is not
/// enough on its own.
fn status_hint(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => {
            "give a valid token with --token or EVAULT_TOKEN (`evault token mint --key-id <id>` \
             makes one)"
        }
        403 => "the token's roles do not allow this; use a token with the role it needs",
        413 => "the vault's upload limit is its `serve --max-upload`: split the file or raise it",
        429 => "the vault limits requests per principal: wait a moment and retry",
        s if s >= 500 => "the vault failed; its log has the details under this request id",
        _ => return None,
    })
}

/// An error reply, described from its problem+json body when there is one.
fn refusal(status: u16, body: &str, request_id: Option<&str>) -> CliError {
    let problem: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let title = field("title").unwrap_or_else(|| {
        ureq::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string()
    });
    let detail = field("detail").or_else(|| {
        let t = body.trim();
        (problem.is_none() && !t.is_empty()).then(|| t.chars().take(300).collect())
    });
    let mut message = format!("the server refused: {status} {title}");
    if let Some(d) = &detail {
        message.push_str(&format!(": {d}"));
    }
    if let Some(r) = request_id {
        message.push_str(&format!(" (request id {r})"));
    }
    let mut e = CliError::new(Exit::Refused, message).with("status", status);
    if let Some(d) = detail {
        e = e.with("detail", d);
    }
    if let Some(r) = request_id {
        e = e.with("request_id", r);
    }
    match status_hint(status) {
        Some(h) => e.hint(h),
        None => e,
    }
}

/// A reader that remembers its own read error, so a failed upload can
/// tell a local file problem from a network one.
struct Tracked<'a> {
    inner: &'a mut dyn Read,
    error: &'a RefCell<Option<std::io::Error>>,
}

impl Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            *self.error.borrow_mut() = Some(std::io::Error::new(e.kind(), e.to_string()));
        })
    }
}

impl Client {
    /// A client for `server` (checked by [`check_server_url`]).
    pub fn new(server: &str, token: Option<String>) -> Result<Client, CliError> {
        let base = check_server_url(server)?;
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Client {
            base,
            token,
            agent,
            request_ids: RefCell::new(HashSet::new()),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether this client made the request with this id.
    pub fn made_request(&self, id: &str) -> bool {
        self.request_ids.borrow().contains(id)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    fn cannot_reach(&self, e: &ureq::Error) -> CliError {
        let what = match e {
            ureq::Error::Io(io) => io_text(io),
            e => e.to_string(),
        };
        CliError::unreachable(format!("cannot reach {}: {what}", self.base)).hint(
            "is `evault serve` running there? Point --server (or EVAULT_SERVER) at the address \
             it prints as \"serving http://…\"",
        )
    }

    /// Classifies a reply: the gRPC port, an error status, or success.
    fn check(
        &self,
        resp: &mut ureq::http::Response<ureq::Body>,
    ) -> Result<Option<CliError>, CliError> {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-request-id");
        if let Some(id) = &request_id {
            self.request_ids.borrow_mut().insert(id.clone());
        }
        if header("content-type").is_some_and(|c| c.starts_with("application/grpc")) {
            return Err(CliError::unreachable(format!(
                "{} is the vault's gRPC port, not its REST API",
                self.base
            ))
            .hint(
                "point --server at the REST address (`evault serve` prints it as \"serving \
                 http://…\"; default http://127.0.0.1:8470)",
            ));
        }
        if status < 400 {
            return Ok(None);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Ok(Some(refusal(status, &body, request_id.as_deref())))
    }

    fn finish(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, CliError> {
        self.finish_reply(resp.map_err(|e| self.cannot_reach(&e))?)
    }

    fn finish_reply(&self, mut resp: ureq::http::Response<ureq::Body>) -> Result<Reply, CliError> {
        if let Some(e) = self.check(&mut resp)? {
            return Err(e);
        }
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| {
                CliError::unreachable(format!("reading the reply from {}: {e}", self.base))
            })?;
        Ok(Reply { status, body })
    }

    /// The vault closed the connection mid-upload. It refuses a request
    /// without a valid token after reading only the start of its body, so
    /// ask it who we are: a refusal there is the real reason.
    fn cut_off(&self, io: &std::io::Error) -> CliError {
        if let Err(e) = self.get_text("/api/v1/whoami", "application/json")
            && e.exit == Exit::Refused
        {
            return e.context("the upload was cut off");
        }
        CliError::unreachable(format!(
            "{} closed the connection while the file was being sent ({})",
            self.base,
            io_text(io)
        ))
        .hint(
            "the vault may have refused the upload (e.g. a token without the ingester role); \
             its audit trail and log say why",
        )
    }

    /// A JSON body that does not parse: not an evault REST API there.
    pub fn not_json(&self, path: &str, e: impl std::fmt::Display) -> CliError {
        CliError::unreachable(format!(
            "the reply from {} is not what an evault server sends: {e}",
            self.url(path)
        ))
        .hint("check that --server is the vault's REST address")
    }

    /// GET returning the body text.
    pub fn get_text(&self, path: &str, accept: &str) -> Result<String, CliError> {
        let req = self
            .auth(self.agent.get(self.url(path)))
            .header("Accept", accept);
        self.finish(req.call()).map(|r| r.body)
    }

    /// GET returning JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let text = self.get_text(path, "application/json")?;
        serde_json::from_str(&text).map_err(|e| self.not_json(path, e))
    }

    /// GET returning a reader of the body as it arrives (an event stream).
    pub fn get_stream(&self, path: &str, accept: &str) -> Result<Box<dyn Read + Send>, CliError> {
        let req = self
            .auth(self.agent.get(self.url(path)))
            .header("Accept", accept);
        let mut resp = req.call().map_err(|e| self.cannot_reach(&e))?;
        if let Some(e) = self.check(&mut resp)? {
            return Err(e);
        }
        Ok(Box::new(
            resp.into_body().into_with_config().limit(u64::MAX).reader(),
        ))
    }

    /// POST of an optional JSON body, returning the JSON reply.
    pub fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let req = self
            .auth(self.agent.post(self.url(path)))
            .header("Accept", "application/json");
        let sent = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            None => req.send_empty(),
        };
        let reply = self.finish(sent)?;
        serde_json::from_str(&reply.body).map_err(|e| self.not_json(path, e))
    }

    /// DELETE, expecting no body back.
    pub fn delete(&self, path: &str) -> Result<(), CliError> {
        let req = self
            .auth(self.agent.delete(self.url(path)))
            .header("Accept", "application/json");
        self.finish(req.call()).map(|_| ())
    }

    /// GET streaming the body into `out`.
    pub fn get_to(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, CliError> {
        let req = self.auth(self.agent.get(self.url(path)));
        let mut resp = req.call().map_err(|e| self.cannot_reach(&e))?;
        if let Some(e) = self.check(&mut resp)? {
            return Err(e);
        }
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, out)
            .map_err(|e| CliError::unreachable(format!("downloading: {}", io_text(&e))))
    }

    /// POSTs the file at `path` (`len` bytes, read through `body`).
    ///
    /// The length is declared and `Expect: 100-continue` sent, so a vault
    /// that refuses the upload (413 over its limit, 401, …) says so before
    /// any of the body is sent, instead of cutting a connection the client
    /// is still writing to (a "broken pipe" that blames the network).
    pub fn post_file(
        &self,
        api_path: &str,
        headers: &[(String, String)],
        file: &Path,
        len: u64,
        body: &mut dyn Read,
    ) -> Result<(u16, Value), CliError> {
        let mut req = self.auth(self.agent.post(self.url(api_path)));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = req
            .header("Content-Length", len.to_string())
            .header("Expect", "100-continue");
        let read_error = RefCell::new(None);
        let mut tracked = Tracked {
            inner: body,
            error: &read_error,
        };
        let sent = req.send(ureq::SendBody::from_reader(&mut tracked));
        if let Some(e) = read_error.borrow_mut().take() {
            return Err(CliError::usage(format!(
                "reading {}: {}",
                file.display(),
                io_text(&e)
            )));
        }
        let sent = sent.map_err(|e| match e {
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                self.cut_off(&io)
            }
            e => self.cannot_reach(&e),
        });
        let reply = self.finish_reply(sent?)?;
        let v = serde_json::from_str(&reply.body).map_err(|e| self.not_json(api_path, e))?;
        Ok((reply.status, v))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_checked() {
        assert_eq!(
            check_server_url("http://127.0.0.1:8470/").unwrap(),
            "http://127.0.0.1:8470"
        );
        assert!(check_server_url("https://vault.example").is_ok());
        let e = check_server_url("127.0.0.1:8470").unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(
            e.hint.as_deref().unwrap().contains("http://127.0.0.1:8470"),
            "{e:?}"
        );
        assert!(check_server_url("ftp://x").is_err());
        assert!(check_server_url("http://").is_err());
    }

    #[test]
    fn refusals_quote_the_problem() {
        let e = refusal(
            413,
            r#"{"type":"about:blank","title":"Payload Too Large","status":413,"detail":"payload exceeds the limit of 10 bytes"}"#,
            Some("r-1"),
        );
        assert_eq!(e.exit, Exit::Refused);
        assert_eq!(
            e.message,
            "the server refused: 413 Payload Too Large: payload exceeds the limit of 10 bytes \
             (request id r-1)"
        );
        assert!(e.hint.unwrap().contains("--max-upload"));
        let e = refusal(502, "bad gateway\n", None);
        assert_eq!(
            e.message,
            "the server refused: 502 Bad Gateway: bad gateway"
        );
    }
}
