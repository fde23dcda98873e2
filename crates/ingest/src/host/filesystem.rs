//! Mounted filesystems: `node_filesystem_{size,free,avail}_bytes`, `node_filesystem_files`,
//! `node_filesystem_files_free`, `node_filesystem_readonly`, `node_filesystem_device_error`
//! (labels `device`, `fstype`, `mountpoint`, as node_exporter) and hubmon's
//! `hubmon_disk_usage_percent`, from the mount table and statvfs.
//!
//! Owns the mounts whose statvfs hangs (a dead NFS server): statvfs runs on a worker thread
//! and the collection waits at most `mount_timeout` for it. A mount that misses it is
//! reported with `node_filesystem_device_error` 1, the worker is left to its fate, and the
//! mount is skipped until that statvfs returns, so a hung mount costs one timeout, not one
//! per collection. This is node_exporter's behaviour too.
//!
//! Sizes use the fragment size `f_frsize`, as POSIX and df do; node_exporter uses `f_bsize`,
//! which Linux sets to the same value on every common filesystem.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use tracing::{debug, warn};

use super::proc_file::ProcFile;
use super::{Batch, HostConfig, Pattern, percent};

/// One line of the mount table, unescaped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
}

/// Parses /proc/mounts. The kernel writes space, tab, newline and backslash in names as
/// octal escapes (`\040`), which are undone here.
pub(crate) fn parse_mounts(text: &str) -> impl Iterator<Item = Mount> + '_ {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let device = fields.next()?;
        let mount_point = fields.next()?;
        let fs_type = fields.next()?;
        let options = fields.next().unwrap_or("");
        Some(Mount {
            device: unescape(device).into_owned(),
            mount_point: unescape(mount_point).into_owned(),
            fs_type: unescape(fs_type).into_owned(),
            read_only: options.split(',').any(|option| option == "ro"),
        })
    })
}

/// Undoes the kernel's `\ooo` escapes; anything else is kept as written.
fn unescape(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// What statvfs says about one filesystem: bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

impl Usage {
    /// `used / (used + avail)`, as df computes Use%: space reserved for root counts neither
    /// as used nor as available. `None` for filesystems with no blocks at all.
    pub(crate) fn used_percent(&self) -> Option<f64> {
        let used = self.size - self.free;
        percent(used, used + self.avail)
    }
}

fn statvfs(path: &Path) -> io::Result<Usage> {
    let stat = rustix::fs::statvfs(path)?;
    let block = if stat.f_frsize > 0 { stat.f_frsize } else { stat.f_bsize } as f64;
    Ok(Usage {
        size: stat.f_blocks as f64 * block,
        free: stat.f_bfree as f64 * block,
        avail: stat.f_bavail as f64 * block,
        files: stat.f_files as f64,
        files_free: stat.f_ffree as f64,
    })
}

/// How measuring one filesystem went.
#[derive(Debug)]
enum Outcome {
    Measured(Usage),
    Failed(io::Error),
    /// Did not answer within the timeout, now or on an earlier collection.
    Stuck,
}

type StuckSet = Arc<Mutex<HashSet<PathBuf>>>;

fn lock(stuck: &StuckSet) -> MutexGuard<'_, HashSet<PathBuf>> {
    // The set stays consistent whatever panicked while holding it: entries are whole paths.
    stuck.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The thread that runs statvfs, with its two channels.
struct Worker {
    requests: mpsc::Sender<PathBuf>,
    replies: mpsc::Receiver<io::Result<Usage>>,
}

/// What the worker runs: [`statvfs`], or a stand-in in tests.
type MeasureFn = fn(&Path) -> io::Result<Usage>;

impl Worker {
    fn spawn(stuck: StuckSet, measure: MeasureFn) -> io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<PathBuf>();
        let (reply, replies) = mpsc::channel();
        thread::Builder::new().name("hubmon-statvfs".to_string()).spawn(move || {
            for path in incoming {
                let result = measure(&path);
                // Answering is what un-sticks a mount, whether or not anyone still waits.
                lock(&stuck).remove(&path);
                if reply.send(result).is_err() {
                    break;
                }
            }
        })?;
        Ok(Self { requests, replies })
    }
}

/// Runs statvfs with a timeout; see the module header.
struct Statvfs {
    timeout: Duration,
    measure: MeasureFn,
    worker: Option<Worker>,
    stuck: StuckSet,
    spawn_failure_logged: bool,
}

impl Statvfs {
    fn new(timeout: Duration) -> Self {
        Self::with_measure(timeout, statvfs)
    }

    fn with_measure(timeout: Duration, measure: MeasureFn) -> Self {
        Self { timeout, measure, worker: None, stuck: StuckSet::default(), spawn_failure_logged: false }
    }

    fn measure(&mut self, path: &Path) -> Outcome {
        // A zero timeout means "no timeout": measure on the collecting thread.
        if self.timeout.is_zero() {
            return outcome((self.measure)(path));
        }
        if lock(&self.stuck).contains(path) {
            return Outcome::Stuck;
        }
        let worker = match self.worker.take() {
            Some(worker) => worker,
            None => match Worker::spawn(Arc::clone(&self.stuck), self.measure) {
                Ok(worker) => worker,
                Err(error) => {
                    if !self.spawn_failure_logged {
                        self.spawn_failure_logged = true;
                        warn!(%error, "cannot start the statvfs thread, measuring filesystems without a timeout");
                    }
                    return outcome((self.measure)(path));
                }
            },
        };
        // Marked before asking, so an answer that comes just after the timeout still clears it.
        lock(&self.stuck).insert(path.to_path_buf());
        if worker.requests.send(path.to_path_buf()).is_err() {
            lock(&self.stuck).remove(path);
            return Outcome::Failed(io::Error::other("statvfs thread stopped"));
        }
        match worker.replies.recv_timeout(self.timeout) {
            Ok(result) => {
                self.worker = Some(worker);
                outcome(result)
            }
            Err(RecvTimeoutError::Timeout) => {
                // The worker stays blocked in statvfs; dropping its channels lets it end once
                // the call returns, and the next mount gets a fresh one.
                warn!(path = %path.display(), timeout = ?self.timeout, "filesystem did not answer statvfs in time, reporting it as a device error until it does");
                Outcome::Stuck
            }
            Err(RecvTimeoutError::Disconnected) => {
                lock(&self.stuck).remove(path);
                Outcome::Failed(io::Error::other("statvfs thread stopped"))
            }
        }
    }
}

fn outcome(result: io::Result<Usage>) -> Outcome {
    match result {
        Ok(usage) => Outcome::Measured(usage),
        Err(error) => Outcome::Failed(error),
    }
}

pub(crate) struct FilesystemCollector {
    /// The init process's mount table, which node_exporter prefers because hubmon's own
    /// mount namespace may be a container's.
    init_mounts: ProcFile,
    /// Our own, when init's cannot be read (not root, hardened procfs).
    own_mounts: ProcFile,
    rootfs: PathBuf,
    fs_types_exclude: Pattern,
    mount_points_exclude: Pattern,
    statvfs: Statvfs,
    mounts: Vec<Mount>,
}

impl FilesystemCollector {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self {
            init_mounts: ProcFile::new(config.procfs.join("1/mounts")),
            own_mounts: ProcFile::new(config.procfs.join("self/mounts")),
            rootfs: config.rootfs.clone(),
            fs_types_exclude: config.fs_types_exclude.clone(),
            mount_points_exclude: config.mount_points_exclude.clone(),
            statvfs: Statvfs::new(config.mount_timeout.as_duration()),
            mounts: Vec::new(),
        }
    }

    pub(crate) fn collect(&mut self, batch: &mut Batch) {
        let text = match self.init_mounts.read() {
            Some(text) => text,
            None => match self.own_mounts.read() {
                Some(text) => text,
                None => return,
            },
        };
        self.mounts.clear();
        for mut mount in parse_mounts(text) {
            mount.mount_point = strip_rootfs(&self.rootfs, mount.mount_point);
            if self.mount_points_exclude.is_match(&mount.mount_point) || self.fs_types_exclude.is_match(&mount.fs_type)
            {
                continue;
            }
            // The same mount listed twice (bind mounts, /dev/pts) is one series, as in
            // node_exporter; the first line wins.
            let seen = self.mounts.iter().any(|seen| {
                seen.mount_point == mount.mount_point && seen.device == mount.device && seen.fs_type == mount.fs_type
            });
            if !seen {
                self.mounts.push(mount);
            }
        }

        for mount in &self.mounts {
            let labels =
                [("device", mount.device.as_str()), ("fstype", &mount.fs_type), ("mountpoint", &mount.mount_point)];
            let path = self.rootfs.join(mount.mount_point.trim_start_matches('/'));
            let usage = match self.statvfs.measure(&path) {
                Outcome::Measured(usage) => Some(usage),
                Outcome::Failed(error) => {
                    debug!(mountpoint = %mount.mount_point, %error, "statvfs failed");
                    None
                }
                Outcome::Stuck => None,
            };
            batch.push("node_filesystem_device_error", &labels, if usage.is_some() { 0.0 } else { 1.0 });
            // Like node_exporter, a mount that could not be measured has only device_error.
            let Some(usage) = usage else { continue };
            batch.push("node_filesystem_readonly", &labels, if mount.read_only { 1.0 } else { 0.0 });
            batch.push("node_filesystem_size_bytes", &labels, usage.size);
            batch.push("node_filesystem_free_bytes", &labels, usage.free);
            batch.push("node_filesystem_avail_bytes", &labels, usage.avail);
            batch.push("node_filesystem_files", &labels, usage.files);
            batch.push("node_filesystem_files_free", &labels, usage.files_free);
            if let Some(used) = usage.used_percent() {
                batch.push("hubmon_disk_usage_percent", &labels, used);
            }
        }
    }
}

/// The mount point as the host sees it: node_exporter's `rootfsStripPrefix`.
fn strip_rootfs(rootfs: &Path, mount_point: String) -> String {
    let Some(rootfs) = rootfs.to_str().filter(|rootfs| *rootfs != "/") else { return mount_point };
    match mount_point.strip_prefix(rootfs.trim_end_matches('/')) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => mount_point,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mount_lines_with_escapes_and_readonly() {
        let text = "/dev/sda1 / ext4 rw,relatime 0 0\n\
                    /dev/sdb1 /mnt/my\\040disk vfat ro,noatime 0 0\n\
                    server:/export /srv/nfs nfs4 rw,errors=remount-ro 0 0\n\
                    short line\n";
        let mounts: Vec<Mount> = parse_mounts(text).collect();
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            mounts[1],
            Mount {
                device: "/dev/sdb1".to_string(),
                mount_point: "/mnt/my disk".to_string(),
                fs_type: "vfat".to_string(),
                read_only: true
            }
        );
        assert!(!mounts[0].read_only);
        // `errors=remount-ro` is not `ro`.
        assert!(!mounts[2].read_only);
    }

    #[test]
    fn unescape_keeps_what_is_not_an_escape() {
        assert_eq!(unescape("a\\011b\\134c"), "a\tb\\c");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("\\999"), "\\999");
    }

    #[test]
    fn rootfs_prefix_is_stripped_like_node_exporter() {
        assert_eq!(strip_rootfs(Path::new("/"), "/data".to_string()), "/data");
        assert_eq!(strip_rootfs(Path::new("/host"), "/host".to_string()), "/");
        assert_eq!(strip_rootfs(Path::new("/host"), "/host/data".to_string()), "/data");
        assert_eq!(strip_rootfs(Path::new("/host/"), "/host/data".to_string()), "/data");
        assert_eq!(strip_rootfs(Path::new("/host"), "/hostile".to_string()), "/hostile");
        assert_eq!(strip_rootfs(Path::new("/host"), "/boot".to_string()), "/boot");
    }

    #[test]
    fn usage_percent_leaves_out_the_root_reserve_like_df() {
        // 100 blocks, 30 free of which 20 available to users: used 70 of 70 + 20.
        let usage = Usage { size: 100.0, free: 30.0, avail: 20.0, files: 0.0, files_free: 0.0 };
        assert_eq!(usage.used_percent(), Some(70.0 / 90.0 * 100.0));
        let empty = Usage { size: 0.0, free: 0.0, avail: 0.0, files: 0.0, files_free: 0.0 };
        assert_eq!(empty.used_percent(), None);
    }

    #[test]
    fn statvfs_on_a_worker_measures_and_reports_failures() {
        let mut statvfs = Statvfs::new(Duration::from_secs(5));
        let Outcome::Measured(usage) = statvfs.measure(Path::new("/")) else { panic!("/ not measured") };
        assert!(usage.size > 0.0);
        assert!(matches!(statvfs.measure(Path::new("/nonexistent/hubmon")), Outcome::Failed(_)));
        assert!(lock(&statvfs.stuck).is_empty());
        // The worker is kept between measurements.
        assert!(statvfs.worker.is_some());
    }

    #[test]
    fn a_mount_marked_stuck_is_skipped_until_it_answers() {
        let mut statvfs = Statvfs::new(Duration::from_secs(5));
        lock(&statvfs.stuck).insert(PathBuf::from("/"));
        assert!(matches!(statvfs.measure(Path::new("/")), Outcome::Stuck));
        lock(&statvfs.stuck).remove(Path::new("/"));
        assert!(matches!(statvfs.measure(Path::new("/")), Outcome::Measured(_)));
    }

    #[test]
    fn a_hung_mount_costs_one_timeout_and_recovers_when_it_answers() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Instant;
        static HANG: AtomicBool = AtomicBool::new(true);
        fn hangs_on_slow(path: &Path) -> io::Result<Usage> {
            if path == Path::new("/slow") && HANG.swap(false, Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(400));
            }
            statvfs(Path::new("/"))
        }

        let mut statvfs = Statvfs::with_measure(Duration::from_millis(50), hangs_on_slow);
        let start = Instant::now();
        assert!(matches!(statvfs.measure(Path::new("/slow")), Outcome::Stuck));
        // Asked again while still hung: skipped at once, and other mounts get a fresh worker.
        assert!(matches!(statvfs.measure(Path::new("/slow")), Outcome::Stuck));
        assert!(matches!(statvfs.measure(Path::new("/")), Outcome::Measured(_)));
        assert!(start.elapsed() < Duration::from_millis(300), "{:?}", start.elapsed());
        // Once the hung call returns, the mount is measured again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&statvfs.stuck).contains(Path::new("/slow")) {
            assert!(Instant::now() < deadline, "hung statvfs never cleared");
            thread::sleep(Duration::from_millis(10));
        }
        assert!(matches!(statvfs.measure(Path::new("/slow")), Outcome::Measured(_)));
    }

    #[test]
    fn zero_timeout_measures_inline() {
        let mut statvfs = Statvfs::new(Duration::ZERO);
        assert!(matches!(statvfs.measure(Path::new("/")), Outcome::Measured(_)));
        assert!(statvfs.worker.is_none());
    }
}
