//! The host collector's configuration section. Defaults are node_exporter's, so a host
//! reports the same series under hubmon as under node_exporter with no flags.
//!
//! Patterns are compiled while the configuration is parsed, so a bad one is a config error
//! with its position, and a collection never compiles anything.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hubmon_model::PromDuration;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where the host collector reads from and what it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Collect host metrics at all (hubmon's own host; `hubmon agent` runs elsewhere).
    pub enabled: bool,
    /// How often host (and GPU) metrics are collected; works down to 1s.
    pub interval: PromDuration,
    /// Collect NVIDIA GPU metrics through NVML when the library and a GPU are present.
    pub gpu: bool,
    /// Where procfs is mounted (node_exporter's `--path.procfs`). In a container, mount the
    /// host's /proc somewhere and point this at it.
    pub procfs: PathBuf,
    /// Where sysfs is mounted (node_exporter's `--path.sysfs`).
    pub sysfs: PathBuf,
    /// Where the host's root filesystem is visible (node_exporter's `--path.rootfs`).
    /// Filesystems are measured under it, and it is stripped from the reported mount points.
    pub rootfs: PathBuf,
    /// Filesystem types left out of `node_filesystem_*`, a regular expression matched against
    /// the type (node_exporter's `--collector.filesystem.fs-types-exclude`, same default).
    pub fs_types_exclude: Pattern,
    /// Mount points left out of `node_filesystem_*`, a regular expression matched against the
    /// mount point (node_exporter's `--collector.filesystem.mount-points-exclude`, same
    /// default).
    pub mount_points_exclude: Pattern,
    /// How long measuring one filesystem may take. A mount that takes longer (a hung NFS
    /// server) is reported with `node_filesystem_device_error` 1 and not asked again until
    /// it answers, as node_exporter's `--collector.filesystem.mount-timeout` does (default
    /// `5s`). `0` measures on the collecting thread with no timeout.
    pub mount_timeout: PromDuration,
    /// Block devices left out of `node_disk_*`, a regular expression matched against the
    /// device name (node_exporter's `--collector.diskstats.device-exclude`, same default:
    /// partitions, RAM disks, loop and floppy devices).
    pub disk_devices_exclude: Pattern,
    /// Network devices left out of `node_network_*`, a regular expression matched against the
    /// device name (node_exporter's `--collector.netdev.device-exclude`). None by default, so
    /// `lo` is reported as node_exporter reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_devices_exclude: Option<Pattern>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: PromDuration(Duration::from_secs(10)),
            gpu: true,
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            fs_types_exclude: Pattern::trusted(DEFAULT_FS_TYPES_EXCLUDE),
            mount_points_exclude: Pattern::trusted(DEFAULT_MOUNT_POINTS_EXCLUDE),
            mount_timeout: PromDuration(Duration::from_secs(5)),
            disk_devices_exclude: Pattern::trusted(DEFAULT_DISK_DEVICES_EXCLUDE),
            network_devices_exclude: None,
        }
    }
}

/// node_exporter's default, with `erofs` added as in its later releases. It keeps `tmpfs`, as
/// node_exporter does: a full /tmp or /run breaks hosts too, and the mount-point default
/// already drops /dev/shm and the like.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|erofs|\
fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// node_exporter's default.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

/// node_exporter's default.
pub const DEFAULT_DISK_DEVICES_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// A regular expression from the configuration, compiled when parsed. Unanchored, as
/// node_exporter's flags are: write `^` and `$` to match whole names.
#[derive(Clone)]
pub struct Pattern(Regex);

impl Pattern {
    /// Compiles `pattern`; the error says where it is wrong.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(pattern).map(Self)
    }

    /// For the defaults above, which the `defaults_compile` test compiles. Falls back to a
    /// pattern that matches nothing rather than panicking.
    fn trusted(pattern: &str) -> Self {
        Self::new(pattern).unwrap_or_else(|_| Self(Regex::new("$^").unwrap_or_else(|_| unreachable!())))
    }

    /// Whether the expression matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::new(&text)
            .map_err(|error| serde::de::Error::custom(format!("invalid regular expression {text:?}: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_compile() {
        for pattern in [DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE, DEFAULT_DISK_DEVICES_EXCLUDE] {
            assert!(Pattern::new(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn default_excludes_match_node_exporter() {
        let config = HostConfig::default();
        for excluded in ["proc", "sysfs", "cgroup", "cgroup2", "overlay", "squashfs", "devtmpfs"] {
            assert!(config.fs_types_exclude.is_match(excluded), "{excluded}");
        }
        for kept in ["ext4", "xfs", "btrfs", "tmpfs", "nfs4", "vfat", "zfs"] {
            assert!(!config.fs_types_exclude.is_match(kept), "{kept}");
        }
        for excluded in ["/dev", "/dev/shm", "/proc", "/sys/fs/cgroup", "/run/credentials/x.service"] {
            assert!(config.mount_points_exclude.is_match(excluded), "{excluded}");
        }
        for kept in ["/", "/home", "/run", "/var/lib/docker", "/devices", "/boot/efi"] {
            assert!(!config.mount_points_exclude.is_match(kept), "{kept}");
        }
        for excluded in ["sda1", "vda2", "xvda1", "nvme0n1p1", "loop0", "ram15", "fd0"] {
            assert!(config.disk_devices_exclude.is_match(excluded), "{excluded}");
        }
        for kept in ["sda", "vda", "nvme0n1", "dm-0", "md0", "zram0", "mmcblk0"] {
            assert!(!config.disk_devices_exclude.is_match(kept), "{kept}");
        }
    }

    #[test]
    fn empty_config_means_defaults() {
        let config: HostConfig = toml::from_str("").unwrap();
        assert_eq!(config, HostConfig::default());
    }

    #[test]
    fn config_round_trips_through_toml() {
        let text = r#"
            procfs = "/host/proc"
            rootfs = "/host"
            mount_timeout = "2s"
            network_devices_exclude = "^(lo|veth.*)$"
        "#;
        let config: HostConfig = toml::from_str(text).unwrap();
        assert_eq!(config.procfs, PathBuf::from("/host/proc"));
        assert_eq!(config.mount_timeout, PromDuration::from_secs(2));
        assert!(config.network_devices_exclude.as_ref().unwrap().is_match("veth12"));
        let again: HostConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn bad_pattern_and_unknown_field_are_config_errors() {
        let error = toml::from_str::<HostConfig>(r#"mount_points_exclude = "^(/dev""#).unwrap_err().to_string();
        assert!(error.contains("invalid regular expression"), "{error}");
        let error = toml::from_str::<HostConfig>("procfs_path = \"/proc\"").unwrap_err().to_string();
        assert!(error.contains("unknown field"), "{error}");
    }
}
