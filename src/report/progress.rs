//! A spinner on stderr for long scans: shown only on a terminal, after half a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::text::human_bytes;
use crate::source::{ObjectProgress, RemoteProgress, Stats};

fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// `, 212.4 MiB/s, ETA 0:42`: the rate of `bytes` so far, and the time left at the pace of
/// `done` of `total` units (blocks, bytes).
fn pace(bytes: u64, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut s = format!(", {:.1} MiB/s", bytes as f64 / secs / (1 << 20) as f64);
    if done > 0 && total > done {
        let left = ((total - done) as f64 * secs / done as f64) as u64;
        s.push_str(&format!(", ETA {}:{:02}", left / 60, left % 60));
    }
    s
}

/// `snapshots 1/3, blocks 5,120/20,480, 212.4 MiB/s, ETA 0:42`.
fn remote_line(r: &RemoteProgress, elapsed: Duration) -> String {
    let (fetched, blocks) = (get(&r.fetched), get(&r.blocks));
    format!(
        "snapshots {}/{}, blocks {fetched}/{blocks}{}",
        get(&r.disks_done),
        get(&r.disks),
        pace(get(&r.bytes), fetched, blocks, elapsed)
    )
}

/// `objects 12/340, 1.2 GiB/4.5 GiB, 85.3 MiB/s, ETA 0:40`.
fn objects_line(o: &ObjectProgress, elapsed: Duration) -> String {
    let (bytes, total) = (get(&o.bytes), get(&o.bytes_total));
    format!(
        "objects {}/{}, {}/{}{}",
        get(&o.done),
        get(&o.total),
        human_bytes(bytes),
        human_bytes(total),
        pace(bytes, bytes, total, elapsed)
    )
}

pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(stats: Arc<Stats>, enabled: bool) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut waited = Duration::ZERO;
                let tick = Duration::from_millis(100);
                while waited < Duration::from_millis(500) {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(tick);
                    waited += tick;
                }
                let pb = ProgressBar::new_spinner();
                pb.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap());
                let start = std::time::Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let r = &stats.remote;
                    let msg = if stats.objects.total.load(Ordering::Relaxed) > 0 {
                        objects_line(&stats.objects, start.elapsed())
                    } else if r.disks.load(Ordering::Relaxed) > 0 {
                        remote_line(r, start.elapsed())
                    } else {
                        format!(
                            "{} files, {}",
                            stats.files.load(Ordering::Relaxed),
                            human_bytes(stats.bytes.load(Ordering::Relaxed))
                        )
                    };
                    pb.set_message(msg);
                    pb.tick();
                    std::thread::sleep(tick);
                }
                pb.finish_and_clear();
            })
        });
        Progress { done, thread }
    }

    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
