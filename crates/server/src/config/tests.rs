use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn no_file_no_env_gives_the_defaults() {
    let config = load(None, &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.listen.0, "127.0.0.1:9550");
    assert_eq!(config.data_dir, PathBuf::from("./hubmon-data"));
    assert_eq!(config.state_location(), StoreLocation::Sqlite(PathBuf::from("./hubmon-data/state.db")));
}

#[test]
fn flags_beat_env_and_env_beats_the_file() {
    let file = write("listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\n[auth]\nsession_ttl = \"1h\"\n");
    let vars = env(&[("HUBMON_LISTEN", "127.0.0.1:2000"), ("HUBMON_AUTH_SESSION_TTL", "30m")]);
    let flags = Overrides { listen: Some("127.0.0.1:3000".into()), ..Default::default() };
    let config = load(Some(file.path()), &vars, &flags).unwrap();
    assert_eq!(config.listen.0, "127.0.0.1:3000", "flag wins");
    assert_eq!(config.auth.session_ttl, "30m".parse().unwrap(), "env beats file");
    assert_eq!(config.data_dir, PathBuf::from("/from/file"), "file beats default");
}

#[test]
fn every_option_has_an_environment_variable() {
    let names: Vec<String> = env_variables().into_iter().map(|(_, name)| name).collect();
    for expected in [
        "HUBMON_LISTEN",
        "HUBMON_DATA_DIR",
        "HUBMON_LOG_LEVEL",
        "HUBMON_LOG_FORMAT",
        "HUBMON_STATE_URL",
        "HUBMON_STATE_CONNECT_TIMEOUT",
        "HUBMON_HTTP_MAX_BODY_BYTES",
        "HUBMON_HTTP_TRUST_FORWARDED_FOR",
        "HUBMON_AUTH_SESSION_TTL",
        "HUBMON_AUTH_COOKIE_SECURE",
        "HUBMON_AUTH_LOGIN_ATTEMPTS_PER_MINUTE",
    ] {
        assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
    }
}

#[test]
fn typed_environment_variables_are_parsed_and_checked() {
    let vars = env(&[("HUBMON_HTTP_MAX_BODY_BYTES", "4096"), ("HUBMON_AUTH_COOKIE_SECURE", "true")]);
    let config = load(None, &vars, &Overrides::default()).unwrap();
    assert_eq!(config.http.max_body_bytes, 4096);
    assert!(config.auth.cookie_secure);

    let error = load(None, &env(&[("HUBMON_HTTP_MAX_BODY_BYTES", "lots")]), &Overrides::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable HUBMON_HTTP_MAX_BODY_BYTES: expected a whole number, got \"lots\""
    );
    let error = load(None, &env(&[("HUBMON_AUTH_SESSION_TTL", "forever")]), &Overrides::default()).unwrap_err();
    assert!(error.to_string().starts_with("environment variable HUBMON_AUTH_SESSION_TTL: invalid duration"), "{error}");
}

#[test]
fn unknown_hubmon_variables_are_reported_as_likely_typos() {
    let vars = env(&[
        ("HUBMON_LISTN", "x"),
        ("HUBMON_TEST_PG_URL", "x"),
        ("HUBMON_ADMIN_PASSWORD", "x"),
        ("HUBMON_LISTEN", "x"),
    ]);
    assert_eq!(unknown_env_variables(&vars), ["HUBMON_LISTN"]);
}

/// Each `tests/config/*.bad.toml` starts with `# expect: <the exact error after the file name>`.
#[test]
fn bad_config_fixtures_fail_with_their_expected_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".bad.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} must start with `# expect: <message>`", path.display()));
        let error = parse_file(&path, &text).expect_err(&format!("{} should be rejected", path.display()));
        let message = error.to_string();
        // Syntax errors carry a position; errors about meaning carry only the message.
        let after_name = match message.split_once(", line") {
            Some((_, rest)) => format!("line{rest}"),
            None => message.split_once(": ").map(|(_, rest)| rest.to_string()).unwrap_or(message.clone()),
        };
        assert_eq!(after_name, expected, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 5, "expected the bad-config fixtures in {}", dir.display());
}

/// The example config documents every option with its default value.
#[test]
fn example_config_is_complete_and_holds_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hubmon.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = parse_file(&path, &text).unwrap();
    assert_eq!(config, Config::default(), "the example must show the defaults");
    let table: toml::Table = toml::from_str(&text).unwrap();
    for (path, variable) in env_variables() {
        let root = toml::Value::Table(table.clone());
        let found = path.iter().try_fold(&root, |value, key| value.get(key));
        assert!(found.is_some(), "option {} is missing from the example", path.join("."));
        assert!(text.contains(&variable), "the example should mention {variable}");
    }
}
