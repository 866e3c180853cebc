//! Loopback networking for the tests: a free port, waiting for a condition,
//! and a minimal HTTP/1.1 client over a plain TCP connection (no client
//! library between the test and what the server really sends).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

/// A loopback port nobody listens on (free when asked; a test binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free local port")
}

/// Poll `condition` every 100 ms until it holds; fail the test, naming
/// `what`, if it does not within `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP response: status, headers (names lower-cased), body (chunked
/// transfer decoded, as text).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON; fails the test, showing the answer, if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {} {}", self.status, self.body))
    }

    /// A header's value (`name` lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A client for one server: each request on a new connection with
/// `Connection: close`, reads bounded by `timeout`.
#[derive(Clone, Debug)]
pub struct Http {
    /// `host:port`, also sent as `Host`.
    pub address: String,
    /// Longest wait for any one read.
    pub timeout: Duration,
}

impl Http {
    pub fn new(address: impl Into<String>, timeout: Duration) -> Http {
        Http {
            address: address.into(),
            timeout,
        }
    }

    /// `method path` with an optional bearer token and an optional body
    /// (content type, bytes).
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, &[u8])>) -> Result<Reply> {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        self.request_with(method, path, &headers, body)
    }

    /// `method path` with extra headers and an optional body (content type, bytes).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply> {
        let mut stream =
            TcpStream::connect(&self.address).with_context(|| format!("connecting to {}", self.address))?;
        stream.set_read_timeout(Some(self.timeout))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, bytes)) = body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if let Some((_, bytes)) = body {
            // A server may answer (413) before reading everything.
            let _ = stream.write_all(bytes);
        }
        let raw = read_response(&mut stream).with_context(|| format!("{method} {path}: reading the answer"))?;
        parse_reply(&raw)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Result<Reply> {
        self.request("GET", path, token, None)
    }

    /// A request with a JSON body.
    pub fn send_json(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Result<Reply> {
        let bytes = body.to_string().into_bytes();
        self.request(method, path, token, Some(("application/json", &bytes)))
    }
}

/// Read until the answer is complete by its `Content-Length` or final
/// chunk, or the server closes (a server may keep the connection open
/// despite `Connection: close`, as chromedriver does). An error after part of
/// the answer ends the read (a server that answered and reset the
/// connection); one before anything arrived is returned.
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16384];
    while !complete(&raw) {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => raw.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if raw.is_empty() => return Err(error),
            Err(_) => break,
        }
    }
    Ok(raw)
}

fn complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    let body = &raw[end + 4..];
    match length {
        Some(length) => body.len() >= length,
        None if head.contains("transfer-encoding: chunked") => find(body, b"0\r\n\r\n").is_some(),
        None => false,
    }
}

/// Split a raw answer into status, headers and body.
pub fn parse_reply(raw: &[u8]) -> Result<Reply> {
    let split = find(raw, b"\r\n\r\n").ok_or_else(|| anyhow!("no HTTP head in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"))
    {
        body = dechunk(&body)?;
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| anyhow!("a broken chunk"))?;
        let size_line = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("a chunk size of {size_line:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let start = line_end + 2;
        out.extend_from_slice(data.get(start..start + size).ok_or_else(|| anyhow!("a short chunk"))?);
        data = data.get(start + size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}
