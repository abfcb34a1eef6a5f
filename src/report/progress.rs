//! A spinner on stderr for long scans: shown only on a terminal, after half a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::text::human_bytes;
use crate::source::{ObjectProgress, RemoteProgress, Stats};

/// `snapshots 1/3, blocks 5,120/20,480, 212.4 MiB/s, ETA 0:42`.
fn remote_line(r: &RemoteProgress, elapsed: Duration) -> String {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (fetched, blocks, bytes) = (get(&r.fetched), get(&r.blocks), get(&r.bytes));
    let secs = elapsed.as_secs_f64().max(0.001);
    let eta = if fetched > 0 && blocks > fetched {
        let left = ((blocks - fetched) as f64 * secs / fetched as f64) as u64;
        format!(", ETA {}:{:02}", left / 60, left % 60)
    } else {
        String::new()
    };
    format!(
        "snapshots {}/{}, blocks {fetched}/{blocks}, {:.1} MiB/s{eta}",
        get(&r.disks_done),
        get(&r.disks),
        bytes as f64 / secs / (1 << 20) as f64
    )
}

/// `objects 12/340, 1.2/4.5 GiB, 85.3 MiB/s, ETA 0:40`.
fn objects_line(o: &ObjectProgress, elapsed: Duration) -> String {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (bytes, total) = (get(&o.bytes), get(&o.bytes_total));
    let secs = elapsed.as_secs_f64().max(0.001);
    let eta = if bytes > 0 && total > bytes {
        let left = ((total - bytes) as f64 * secs / bytes as f64) as u64;
        format!(", ETA {}:{:02}", left / 60, left % 60)
    } else {
        String::new()
    };
    format!(
        "objects {}/{}, {}/{}, {:.1} MiB/s{eta}",
        get(&o.done),
        get(&o.total),
        human_bytes(bytes),
        human_bytes(total),
        bytes as f64 / secs / (1 << 20) as f64
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
