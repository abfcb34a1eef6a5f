//! Serves one raw disk image as an EBS snapshot on 127.0.0.1, for bench/snapshot.sh.
//!
//!     ebs-bench-server IMAGE PORT [SNAPSHOT_ID]      (PORT 0: any free port)
//!
//! It answers, for any credentials, the calls `keyhound snapshot SNAPSHOT_ID` makes: STS
//! GetCallerIdentity, EC2 DescribeSnapshots and DescribeVolumes (Query protocol, XML), and the
//! EBS direct APIs ListSnapshotBlocks (paginated, 10,000 a page) and GetSnapshotBlock, with
//! AWS's 512 KiB blocks. Only the blocks that are not all zeros are listed, as a snapshot lists
//! only written blocks; each body carries x-amz-Data-Length and x-amz-Checksum (SHA-256, base64,
//! computed once at start). Bodies are sent from the image with sendfile(2), so that the
//! server's own cost on the cores keyhound is measured on stays small. Prints
//! `ready N written blocks on PORT` once it listens. `GET /stats` returns `{"blocks": N}`, the
//! block requests served. With `EBS_BENCH_LATENCY_MS=N` in its environment, each
//! GetSnapshotBlock answer waits N ms first (the time a request takes on AWS, where loopback
//! takes none).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};

const BS: u64 = 512 << 10;
const ACCOUNT: &str = "123456789012";
const PAGE: usize = 10_000;

struct Snapshot {
    image: String,
    id: String,
    size: u64,
    /// Written block indices, sorted, and each one's checksum.
    order: Vec<u64>,
    sums: std::collections::HashMap<u64, String>,
    served: AtomicU64,
    /// Milliseconds each GetSnapshotBlock answer waits.
    latency_ms: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: ebs-bench-server IMAGE PORT [SNAPSHOT_ID]");
        std::process::exit(2);
    }
    let image = args[1].clone();
    let id = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "snap-0bench000000000000".into());
    let mut f = File::open(&image).unwrap_or_else(|e| die(&format!("{image}: {e}")));
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let (mut order, mut sums) = (Vec::new(), std::collections::HashMap::new());
    let mut block = vec![0u8; BS as usize];
    for i in 0.. {
        block.fill(0);
        let n = read_full(&mut f, &mut block).unwrap_or_else(|e| die(&format!("{image}: {e}")));
        if n == 0 {
            break;
        }
        if block.iter().any(|&b| b != 0) {
            let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&block));
            order.push(i);
            sums.insert(i, sum);
        }
    }
    let snap = Arc::new(Snapshot {
        image,
        id,
        size,
        order,
        sums,
        served: AtomicU64::new(0),
        latency_ms: std::env::var("EBS_BENCH_LATENCY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    });
    let listener = TcpListener::bind(("127.0.0.1", args[2].parse::<u16>().unwrap_or(0)))
        .unwrap_or_else(|e| die(&format!("listen: {e}")));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("ready {} written blocks on {port}", snap.order.len());
    io::stdout().flush().ok();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let snap = snap.clone();
        std::thread::spawn(move || {
            // A connection that breaks ends its thread; the bench sees the client's error.
            let _ = serve(&snap, conn);
        });
    }
}

fn die(msg: &str) -> ! {
    eprintln!("ebs-bench-server: {msg}");
    std::process::exit(2)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Answers one connection's requests, kept alive, until the client closes it.
fn serve(snap: &Snapshot, conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut out = conn.try_clone()?;
    let mut input = BufReader::new(conn);
    let image = File::open(&snap.image)?;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if input.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        input.read_exact(&mut body)?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", _) => {
                let form = String::from_utf8_lossy(&body);
                let (status, xml) = query_api(snap, param(&form, "Action").unwrap_or_default());
                reply(&mut out, status, "text/xml", xml.as_bytes())?;
            }
            ("GET", ["stats"]) => {
                let json = format!("{{\"blocks\": {}}}", snap.served.load(Ordering::Relaxed));
                reply(&mut out, 200, "application/json", json.as_bytes())?;
            }
            ("GET", ["snapshots", _, "blocks"]) => {
                let start: usize = param(query, "pageToken")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let page = snap.order.get(start..).unwrap_or(&[]);
                let page = &page[..page.len().min(PAGE)];
                let blocks: Vec<String> = page
                    .iter()
                    .map(|i| format!("{{\"BlockIndex\":{i},\"BlockToken\":\"t{i}\"}}"))
                    .collect();
                let next = if start + PAGE < snap.order.len() {
                    format!(",\"NextToken\":\"{}\"", start + PAGE)
                } else {
                    String::new()
                };
                let json = format!(
                    "{{\"Blocks\":[{}],\"BlockSize\":{BS},\"VolumeSize\":{}{next}}}",
                    blocks.join(","),
                    snap.size.div_ceil(1 << 30)
                );
                reply(&mut out, 200, "application/json", json.as_bytes())?;
            }
            ("GET", ["snapshots", _, "blocks", i]) => {
                let i: u64 = i.parse().unwrap_or(u64::MAX);
                let Some(sum) = snap.sums.get(&i) else {
                    reply(&mut out, 404, "application/json", b"{}")?;
                    continue;
                };
                snap.served.fetch_add(1, Ordering::Relaxed);
                if snap.latency_ms > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(snap.latency_ms));
                }
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {BS}\r\nx-amz-Data-Length: {BS}\r\n\
                     x-amz-Checksum: {sum}\r\nx-amz-Checksum-Algorithm: SHA256\r\n\r\n"
                )?;
                let want = BS.min(snap.size - i * BS);
                let sent = send_file(&out, &image, i * BS, want)?;
                if sent < BS {
                    // The image's last block, short: padded with zeros.
                    out.write_all(&vec![0u8; (BS - sent) as usize])?;
                }
            }
            _ => reply(&mut out, 404, "application/json", b"{}")?,
        }
    }
}

/// `want` bytes of `image` from `off` to the socket with sendfile(2): the page cache's pages go
/// to the socket without a copy through this process. (std's `io::copy` uses sendfile only
/// towards a pipe; to a socket it copied through an 8 KiB buffer: about 88,000 reads and
/// 98,000 sends a bench run, 0.6 s of system time on the two cores keyhound is measured on.)
fn send_file(out: &TcpStream, image: &File, mut off: u64, want: u64) -> io::Result<u64> {
    let mut sent = 0;
    while sent < want {
        let mut at = off as libc::off_t;
        // SAFETY: both descriptors are open for the call; `at` is a valid offset to update.
        let n = unsafe {
            libc::sendfile(
                out.as_raw_fd(),
                image.as_raw_fd(),
                &mut at,
                (want - sent) as usize,
            )
        };
        match n {
            0 => break,
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => {
                sent += n as u64;
                off += n as u64;
            }
        }
    }
    Ok(sent)
}

fn reply(out: &mut TcpStream, status: u16, ctype: &str, body: &[u8]) -> io::Result<()> {
    let reason = if status == 200 { "OK" } else { "Error" };
    let mut msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    out.write_all(&msg)
}

/// A parameter of a query string or form, decoded as far as these calls need.
fn param(s: &str, name: &str) -> Option<String> {
    s.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace('+', " ").replace("%3D", "=").replace("%2F", "/"))
    })
}

/// STS and EC2 Query-protocol calls.
fn query_api(snap: &Snapshot, action: String) -> (u16, String) {
    match action.as_str() {
        "GetCallerIdentity" => (
            200,
            format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/bench</Arn>\
                 <UserId>AIDABENCH</UserId><Account>{ACCOUNT}</Account>\
                 </GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId>\
                 </ResponseMetadata></GetCallerIdentityResponse>"
            ),
        ),
        "DescribeSnapshots" => (
            200,
            format!(
                "<DescribeSnapshotsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
                 <requestId>1</requestId><snapshotSet><item>\
                 <snapshotId>{}</snapshotId><volumeId>vol-0bench000000000000</volumeId>\
                 <status>completed</status><startTime>2026-01-01T00:00:00.000Z</startTime>\
                 <progress>100%</progress><ownerId>{ACCOUNT}</ownerId>\
                 <volumeSize>{}</volumeSize><encrypted>false</encrypted>\
                 </item></snapshotSet></DescribeSnapshotsResponse>",
                snap.id,
                snap.size.div_ceil(1 << 30)
            ),
        ),
        "DescribeVolumes" => (
            200,
            "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>1</requestId><volumeSet/></DescribeVolumesResponse>"
                .into(),
        ),
        other => (
            400,
            format!(
                "<Response><Errors><Error><Code>Unsupported</Code><Message>{other}</Message>\
                 </Error></Errors></Response>"
            ),
        ),
    }
}
