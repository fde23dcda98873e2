//! `hubmon` as a child process, for the tests that must kill it (`kill -9`) or restart it on
//! the same data directory, which an in-process server cannot show.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HUBMON: &str = env!("CARGO_BIN_EXE_hubmon");

/// Starts `hubmon serve` on a free port with `data` as its data dir, `args` added (e.g.
/// `["--config", path]`) and `env` set; returns the child and its base URL once it listens.
/// Its stderr keeps being drained so the server never blocks on a full pipe.
pub fn serve(data: &str, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut command = Command::new(HUBMON);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
        .args(args)
        .env("HUBMON_ADMIN_PASSWORD", "process-test-password")
        .env("HUBMON_LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(address) = line.strip_prefix("hubmon: listening on ") {
                    std::thread::spawn(move || for _ in lines.by_ref() {});
                    return (child, address.to_string());
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hubmon did not start");
}

/// `hubmon token create --role ROLE` on `data` (with `args`, e.g. `--config`): the new token.
pub fn create_token(data: &str, args: &[&str], role: &str) -> String {
    let out = Command::new(HUBMON)
        .args(["token", "create", "--role", role, "--name", role, "--data-dir", data])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
