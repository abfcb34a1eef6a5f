//! Servers the verification tests talk to, each on a free loopback port, stopped on drop:
//! moto (the real AWS emulator) and a small canned server for answers moto cannot give (STS
//! answers per key, or a fixed answer per query-protocol action, such as an EC2 snapshot that
//! is still pending: moto's are completed as soon as they exist).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `moto_server` from ./.venv, with users and keys made by tests/aws/moto_setup.py.
pub struct Moto {
    child: Child,
    /// moto_server's stderr: werkzeug's log of every request (`"GET /path HTTP/1.1" 200`).
    log: tempfile::NamedTempFile,
    pub endpoint: String,
    /// What moto_setup.py printed: alice, deleted, admin → key_id, secret, arn, account…
    pub setup: serde_json::Value,
    /// Where moto's recorder writes (`record()`): every request with its headers.
    recording: tempfile::NamedTempFile,
}

/// Runs a script of tests/aws/ with the venv's python; its stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(dir.join(".venv/bin/python"))
        .arg(dir.join("tests/aws").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Moto {
    /// With the users of tests/aws/moto_setup.py.
    pub fn start() -> Moto {
        Moto::start_with("moto_setup.py", &[])
    }

    /// With what `script` (in tests/aws/) sets up, given `args` after the endpoint; it prints
    /// JSON.
    pub fn start_with(script: &str, args: &[&str]) -> Moto {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin");
        let server = venv.join("moto_server");
        assert!(
            server.exists(),
            "{} is missing; run scripts/test",
            server.display()
        );
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let recording = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", recording.path())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("moto_server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut a = vec![endpoint.as_str()];
        a.extend_from_slice(args);
        let setup = serde_json::from_str(&python(script, &a)).unwrap();
        Moto {
            child,
            log,
            endpoint,
            setup,
            recording,
        }
    }

    fn moto_api(&self, path: &str, post: bool) -> String {
        let mut s = TcpStream::connect(self.endpoint.trim_start_matches("http://")).unwrap();
        let method = if post { "POST" } else { "GET" };
        write!(
            s,
            "{method} /moto-api/recorder/{path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
        out
    }

    /// Starts moto's recorder afresh: from now on every request is kept with its headers.
    pub fn record(&self) {
        self.moto_api("reset-recording", true);
        self.moto_api("start-recording", true);
    }

    /// The requests recorded since `record()`: method, URL, headers.
    pub fn recorded(&self) -> Vec<serde_json::Value> {
        self.moto_api("stop-recording", true);
        std::fs::read_to_string(self.recording.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The request lines moto logged so far (`GET /snapshots/snap-…/blocks/7?… HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| Some(l.split_once('"')?.1.split_once('"')?.0.to_string()))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One canned answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// GetCallerIdentity succeeds.
    Ok { account: String, arn: String },
    /// An error document with this HTTP status and `<Code>`; no code: a bare body.
    Error { status: u16, code: Option<String> },
    /// Wait this long, then answer Ok.
    Slow(Duration),
}

struct Shared {
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// A body for every request of a query-protocol action (`Action=…` in the form).
    actions: Mutex<HashMap<String, String>>,
    default: Reply,
    delay: Duration,
    calls: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// An HTTP server answering STS GetCallerIdentity from a script per key id (read from the
/// request's SigV4 Authorization header).
pub struct Canned {
    pub endpoint: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Canned {
    pub fn start(default: Reply, delay: Duration) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            script: Mutex::new(HashMap::new()),
            actions: Mutex::new(HashMap::new()),
            default,
            delay,
            calls: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Canned {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
            stop,
            port,
        }
    }

    /// Answers for `key_id`, in order; then the default.
    pub fn script(&self, key_id: &str, replies: Vec<Reply>) {
        self.shared
            .script
            .lock()
            .unwrap()
            .insert(key_id.to_string(), replies.into());
    }

    /// Answers every request of `action` (any key) with `body`, status 200; counted under
    /// `action:<action>`.
    pub fn answer(&self, action: &str, body: &str) {
        self.shared
            .actions
            .lock()
            .unwrap()
            .insert(action.to_string(), body.to_string());
    }

    pub fn calls(&self, key_id: &str) -> usize {
        self.shared
            .calls
            .lock()
            .unwrap()
            .get(key_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.shared.calls.lock().unwrap().values().sum()
    }

    pub fn all_calls(&self) -> HashMap<String, usize> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, s: &Shared) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        headers.push(line);
    }
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let key_id = header("authorization")
        .and_then(|a| {
            let c = a.split("Credential=").nth(1)?;
            Some(c.split('/').next()?.to_string())
        })
        .unwrap_or_default();
    let action = String::from_utf8_lossy(&body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action=").map(str::to_string));
    let fixed = action
        .as_ref()
        .and_then(|a| s.actions.lock().unwrap().get(a).cloned());
    if let (Some(a), Some(body)) = (action, fixed) {
        *s.calls
            .lock()
            .unwrap()
            .entry(format!("action:{a}"))
            .or_default() += 1;
        return respond(conn, 200, &body);
    }
    *s.calls.lock().unwrap().entry(key_id.clone()).or_default() += 1;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(s.delay);
    let reply = s
        .script
        .lock()
        .unwrap()
        .get_mut(&key_id)
        .and_then(|q| q.pop_front())
        .unwrap_or_else(|| s.default.clone());
    let (status, body) = match reply {
        Reply::Ok { account, arn } => (200, ok_body(&account, &arn)),
        Reply::Slow(d) => {
            std::thread::sleep(d);
            (
                200,
                ok_body("123456789012", "arn:aws:iam::123456789012:user/slow"),
            )
        }
        Reply::Error {
            status,
            code: Some(c),
        } => (
            status,
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>Sender</Type><Code>{c}</Code><Message>canned</Message></Error>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ),
        ),
        Reply::Error { status, code: None } => (status, "<html>Forbidden</html>".to_string()),
    };
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    respond(conn, status, &body);
}

/// One XML answer, and the connection closed.
fn respond(mut conn: TcpStream, status: u16, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
}

pub fn ok_body(account: &str, arn: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDACANNEDUSERID0001</UserId>\
         <Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata>\
         <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>\
         </GetCallerIdentityResponse>"
    )
}
