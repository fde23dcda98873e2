//! The `hubmon` binary as an operator runs it: start, stop on a signal, refuse a second
//! server on one data dir, and fail at start with one clear line on bad configuration.

#![allow(clippy::unwrap_used, clippy::zombie_processes, clippy::type_complexity)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HUBMON: &str = env!("CARGO_BIN_EXE_hubmon");

fn hubmon(args: &[&str]) -> Command {
    let mut command = Command::new(HUBMON);
    command.args(args).env_remove("HUBMON_CONFIG").env_remove("HUBMON_ADMIN_PASSWORD");
    command
}

/// Starts `hubmon serve` on a free port and waits until it says where it listens.
fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> (Child, String) {
    let mut command = hubmon(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()]);
    command.env("HUBMON_LOG_FORMAT", "text").stderr(Stdio::piped()).stdout(Stdio::null());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = receiver.recv_timeout(Duration::from_millis(100)) {
            if let Some(address) = line.strip_prefix("hubmon: listening on ") {
                return (child, address.to_string());
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    panic!("hubmon did not report listening; stderr:\n{}", seen.join("\n"));
}

fn get(url: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0) })
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "hubmon did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn output_text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn serves_healthz_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = start(dir.path(), &[]);
    assert_eq!(get(&format!("{address}/healthz")), 200);
    assert_eq!(get(&format!("{address}/api/v1/audit")), 401);
    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = start(dir.path(), &[]);
    let second =
        hubmon(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()]).output().unwrap();
    assert!(!second.status.success());
    let text = output_text(&second);
    assert!(text.contains("is in use by another hubmon server"), "{text}");
    assert!(text.contains(&format!("pid {}", first.id())), "{text}");
    assert!(terminate(&mut first).success());
    // After the first stops, the data dir is free again and nothing was lost.
    let (mut again, address) = start(dir.path(), &[]);
    assert_eq!(get(&format!("{address}/readyz")), 200);
    assert!(terminate(&mut again).success());
}

#[test]
fn the_admin_password_is_printed_once_or_taken_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = hubmon(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()]);
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let announced = lines.find(|line| line.contains("created user \"admin\" with password: ")).unwrap();
    let password = announced.rsplit(' ').next().unwrap().to_string();
    assert!(password.len() >= 20, "{announced}");
    // The password is printed before the server handles SIGTERM; on a busy machine a signal
    // sent at once could kill it instead of stopping it.
    assert!(lines.any(|line| line.starts_with("hubmon: listening on ")), "hubmon did not report listening");
    assert!(terminate(&mut child).success());

    let (mut restarted, _) = start(dir.path(), &[]);
    assert!(terminate(&mut restarted).success());

    let other = tempfile::tempdir().unwrap();
    let (mut child, address) = start(other.path(), &[("HUBMON_ADMIN_PASSWORD", "from-the-environment")]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{address}/api/v1/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": "from-the-environment"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    assert!(terminate(&mut child).success());
}

#[test]
fn startup_problems_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "listen = \"127.0.0.1:0\"\n[auth]\nsesion_ttl = \"1h\"\n").unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let under_a_file = format!("{}/sub", blocker.display());
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (vec!["--config", bad_config.to_str().unwrap()], vec![], "line 3, column 1: unknown field `sesion_ttl`"),
        (vec!["--data-dir", &under_a_file], vec![], "cannot create data dir"),
        (
            vec!["--data-dir", data, "--state-url", "postgres://hubmon:hunter2@127.0.0.1:1/hubmon"],
            vec![("HUBMON_STATE_CONNECT_TIMEOUT", "2s")],
            "cannot open the state store at postgres://hubmon:***@127.0.0.1:1/hubmon",
        ),
        (vec!["--data-dir", data, "--listen", "not-an-address"], vec![], "invalid listen address"),
        (
            vec!["--data-dir", data],
            vec![("HUBMON_AUTH_SESSION_TTL", "forever")],
            "environment variable HUBMON_AUTH_SESSION_TTL",
        ),
        (
            vec!["--data-dir", data, "--config", "/nonexistent/hubmon.toml"],
            vec![],
            "cannot read config file /nonexistent/hubmon.toml",
        ),
    ];
    for (args, env, expected) in cases {
        let mut all = vec!["serve"];
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        all.extend(args.iter());
        let mut command = hubmon(&all);
        command.envs(env.iter().copied());
        let started = Instant::now();
        let output = command.output().unwrap();
        let text = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: expected {expected:?} in {text}");
        assert!(!text.contains("hunter2"), "passwords are masked: {text}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(15), "{args:?} took {:?}", started.elapsed());
    }
}

#[test]
fn config_check_validates_files() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/hubmon.example.toml");
    let output = hubmon(&["config", "check", example]).output().unwrap();
    assert!(output.status.success(), "{}", output_text(&output));
    let bad = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/config/unknown-key.bad.toml");
    let output = hubmon(&["config", "check", bad]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output_text(&output).contains("line 4, column 1: unknown field `listn`"));
}

#[test]
fn token_create_prints_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let missing = hubmon(&["token", "create", "--role", "ingest", "--name", "x", "--data-dir", data]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1), "no state store yet: {}", output_text(&missing));
    assert!(output_text(&missing).contains("start `hubmon serve` once"));

    let (mut server, address) = start(dir.path(), &[]);
    let output = hubmon(&[
        "token",
        "create",
        "--role",
        "viewer",
        "--name",
        "grafana",
        "--expires-in",
        "30d",
        "--data-dir",
        data,
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", output_text(&output));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("hm_"), "{token}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let me: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{address}/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["name"], "grafana");
    let bad_role = hubmon(&["token", "create", "--role", "root", "--name", "x", "--data-dir", data]).output().unwrap();
    assert!(!bad_role.status.success());
    assert!(output_text(&bad_role).contains("unknown role"), "{}", output_text(&bad_role));
    assert!(terminate(&mut server).success());
}
