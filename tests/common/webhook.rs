//! A small real HTTP/1.1 server for webhook deliveries: it records every
//! request and answers with the status currently set.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub target: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A small real HTTP/1.1 server: records every request and answers with the
/// status currently set (and a body chat robots would send on success).
pub struct Receiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<Received>>>,
    pub status: Arc<AtomicU16>,
}

impl Receiver {
    pub fn start(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (shared, code) = (requests.clone(), status.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (shared, code) = (shared.clone(), code.clone());
                std::thread::spawn(move || serve(stream, &shared, &code));
            }
        });
        Receiver { port, requests, status }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn on(&self, path: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|request| request.target.split('?').next() == Some(path))
            .collect()
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Received>>, status: &AtomicU16) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    requests.lock().expect("lock").push(Received { target, headers, body });
    let code = status.load(Ordering::SeqCst);
    let answer = if code == 200 {
        r#"{"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#
    } else {
        r#"{"error":"refused by the test"}"#
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}
