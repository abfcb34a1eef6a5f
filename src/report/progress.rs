//! A spinner on stderr for long scans: shown only on a terminal, after half a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::text::human_bytes;
use crate::source::Stats;

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
                while !done.load(Ordering::Relaxed) {
                    pb.set_message(format!(
                        "{} files, {}",
                        stats.files.load(Ordering::Relaxed),
                        human_bytes(stats.bytes.load(Ordering::Relaxed))
                    ));
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
