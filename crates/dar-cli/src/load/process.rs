//! The servers under load as child processes (`dar serve --config FILE`), and what Linux's
//! `/proc` says about a process: resident memory (current and peak), CPU time, open-file limit.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::LoadError;
use super::wire::{self, Target};

/// Clock ticks per second of `/proc/PID/stat`'s CPU times (`USER_HZ`, 100 on every Linux
/// architecture this runs on; reading `sysconf(_SC_CLK_TCK)` would need `libc`).
const USER_HZ: f64 = 100.0;
/// How long a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One `dar serve` child, killed (and reaped) when dropped.
pub(crate) struct Server {
    child: Child,
    role: &'static str,
    log: PathBuf,
}

impl Server {
    /// Starts `binary serve --config file`, its log appended to `dir/serve.log`.
    ///
    /// # Errors
    ///
    /// [`LoadError::Io`] when the log cannot be opened or the process not started.
    pub(crate) fn spawn(
        binary: &Path,
        file: &Path,
        dir: &Path,
        role: &'static str,
    ) -> Result<Self, LoadError> {
        let log = dir.join("serve.log");
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LoadError::io(format!("cannot open {}", log.display())))?;
        let child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(file)
            // Warnings only: a line per request would cost the server as much as some handlers.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(LoadError::io(format!("cannot start {}", binary.display())))?;
        Ok(Self { child, role, log })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server answers its configuration document over HTTPS through the
    /// local CA at `ca_file` (which the first server to start writes).
    ///
    /// # Errors
    ///
    /// [`LoadError::ServerStart`] when the process exits or does not answer in time.
    pub(crate) async fn wait_ready(
        &mut self,
        origin: &str,
        ca_file: &Path,
        path: &str,
    ) -> Result<(), LoadError> {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(format!("exited with {status}")));
            }
            if let Ok(ca) = std::fs::read(ca_file) {
                let target = Target::new(origin, &ca)?;
                if let Ok(mut stream) = target.connect().await
                    && let Ok(200) = wire::get(&mut stream, &target.get_request(path)).await
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.failed(format!("did not answer within {START_TIMEOUT:?}")))
    }

    fn failed(&self, why: String) -> LoadError {
        LoadError::ServerStart {
            role: self.role,
            why,
            log: self.log.clone(),
        }
    }

    /// Resident memory now and at its peak.
    pub(crate) fn memory(&self) -> Option<Memory> {
        memory(self.pid())
    }

    /// Resets the peak resident memory to the current one (Linux `clear_refs` 5), so that the
    /// next reading is the peak of what follows. False when the kernel refused.
    pub(crate) fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// CPU time used so far (user and system, every thread).
    pub(crate) fn cpu(&self) -> Option<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Memory {
    /// `VmRSS`, KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM` (the peak), KiB.
    pub(crate) peak_kib: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// `VmRSS` and `VmHWM` from the text of `/proc/PID/status`.
pub(crate) fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// This process's CPU time so far.
pub(crate) fn own_cpu() -> Option<Duration> {
    cpu_time("/proc/self/stat")
}

fn cpu_time(path: &str) -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string(path).ok()?)
}

/// `utime + stime` from the text of `/proc/PID/stat` (fields 14 and 15; the command name in
/// field 2 may hold spaces, so fields are counted after its closing parenthesis).
pub(crate) fn parse_stat_cpu(text: &str) -> Option<Duration> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

/// The soft limit on open files of this process (children inherit it).
pub(crate) fn open_files_limit() -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft `Max open files` of the text of `/proc/PID/limits`.
pub(crate) fn parse_open_files_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_from_status() {
        let text = "Name:\tdar\nVmPeak:\t  999 kB\nVmHWM:\t   52344 kB\nVmRSS:\t   40100 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 40100,
                peak_kib: 52344
            })
        );
        assert_eq!(parse_status("Name:\tdar\nVmRSS:\t1 kB\n"), None);
    }

    #[test]
    fn reads_cpu_time_after_a_name_with_spaces() {
        let text = "4242 (tokio rt) S 1 2 3 4 5 6 7 8 9 10 250 130 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat_cpu(text), Some(Duration::from_millis(3800)));
        assert_eq!(parse_stat_cpu("4242 (dar) S 1"), None);
    }

    #[test]
    fn reads_the_soft_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(text), Some(u64::MAX));
        assert_eq!(parse_open_files_limit("Max processes 1 1\n"), None);
    }
}
