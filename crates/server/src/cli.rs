//! The command line: `hubmon serve`, `hubmon config check`, `hubmon token create`,
//! `hubmon logs export|import`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hubmon_model::{PromDuration, Role};
use hubmon_state::{SqlStore, StateStore};

use crate::config::{self, Config, Overrides};

#[derive(Parser, Debug)]
#[command(name = "hubmon", version, about = "Self-hosted monitoring in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs the server: API, dashboard, collectors, storage, rules, notifications.
    Serve(ServerArgs),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Alert rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// API token administration, directly on the state store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Log export and import through a running server.
    Logs {
        #[command(subcommand)]
        command: LogsCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogsCommand {
    /// Writes the lines matching a query as NDJSON to stdout (or --output), newest first.
    Export {
        /// The search query (as in the dashboard); empty: every line.
        #[arg(long, default_value = "")]
        query: String,
        /// Start: RFC 3339 or epoch seconds/ms/ns.
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// File to write instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        target: crate::logs::transfer::Target,
    },
    /// Sends a file of NDJSON or plain text lines (one message each), with a progress bar.
    Import {
        file: PathBuf,
        #[command(flatten)]
        target: crate::logs::transfer::Target,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validates a config file and reports the first problem with its line.
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Validates Prometheus rule files and reports the first problem of each.
    Check {
        /// Rule files (YAML, `groups:`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs rule unit tests written for `promtool test rules`.
    Test {
        /// Test files (YAML: rule_files, evaluation_interval, tests).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Creates an API token and prints it (once).
    Create {
        /// viewer, editor, admin or ingest.
        #[arg(long)]
        role: Role,
        /// What the token is for, e.g. "prometheus remote_write".
        #[arg(long)]
        name: String,
        /// Lifetime such as 30d; without it the token does not expire.
        #[arg(long)]
        expires_in: Option<PromDuration>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the server's configuration and state are.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// TOML config file (see deploy/hubmon.example.toml).
    #[arg(long, env = "HUBMON_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9550].
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory [default: ./hubmon-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// State store: a postgres:// URL; default SQLite in the data dir.
    #[arg(long)]
    pub state_url: Option<String>,
}

impl ServerArgs {
    /// The configuration these arguments select, with environment variables applied.
    pub fn load(&self) -> Result<Config, config::ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let overrides = Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            state_url: self.state_url.clone(),
        };
        config::load(self.config.as_deref(), &env, &overrides)
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config { command: ConfigCommand::Check { file } } => check_config(&file),
        Command::Rules { command: RulesCommand::Check { files } } => check_rules(&files),
        Command::Rules { command: RulesCommand::Test { files } } => test_rules(&files),
        Command::Token { command: TokenCommand::Create { role, name, expires_in, server } } => {
            create_token(&server, role, &name, expires_in)
        }
        Command::Logs { command } => logs_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubmon: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_rules(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?;
        match hubmon_rules::parse_rule_file(&text, &shown, std::time::Duration::from_secs(15)) {
            Ok(groups) => {
                let alerting: usize = groups.iter().map(|g| g.alerting.len()).sum();
                let recording: usize = groups.iter().map(|g| g.recording.len()).sum();
                println!(
                    "{shown}: SUCCESS: {} groups, {alerting} alerting and {recording} recording rules",
                    groups.len()
                );
            }
            Err(e) => {
                println!("{shown}: FAILED: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} rule files are invalid", files.len());
    }
    Ok(())
}

fn test_rules(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        println!("Unit Testing: {}", file.display());
        match hubmon_rules::unittest::run_file(file) {
            Ok(report) if report.failures.is_empty() => println!("  SUCCESS ({} tests)", report.cases),
            Ok(report) => {
                failed += 1;
                println!("  FAILED:");
                for failure in &report.failures {
                    println!("    {failure}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("  FAILED: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} rule test files failed", files.len());
    }
    Ok(())
}

fn logs_command(command: LogsCommand) -> anyhow::Result<()> {
    use crate::logs::transfer;
    match command {
        LogsCommand::Export { query, from, to, output, target } => {
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let written =
                runtime()?.block_on(transfer::export(&target, &query, from.as_deref(), to.as_deref(), &mut out))?;
            eprintln!("hubmon: exported {written} lines");
        }
        LogsCommand::Import { file, target } => {
            let (accepted, rejected) = runtime()?.block_on(transfer::import(&target, &file))?;
            eprintln!("hubmon: imported {accepted} lines, {rejected} refused");
        }
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    crate::telemetry::init_logging(&config.log);
    let env: BTreeMap<String, String> = std::env::vars().collect();
    for variable in config::unknown_env_variables(&env) {
        tracing::warn!(%variable, "unknown HUBMON_ environment variable ignored; see deploy/hubmon.example.toml");
    }
    let admin_password = std::env::var("HUBMON_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    let from_env = admin_password.is_some();
    runtime()?.block_on(async move {
        let shutdown = ShutdownSignal::install();
        let server = crate::app::start(config, admin_password).await?;
        match &server.admin_password {
            Some(_) if from_env => {
                eprintln!("hubmon: created user \"admin\" with the password from HUBMON_ADMIN_PASSWORD")
            }
            Some(password) => {
                eprintln!("hubmon: created user \"admin\" with password: {password}");
                eprintln!("hubmon: this password is shown only once; log in and change it");
            }
            None => {}
        }
        eprintln!("hubmon: listening on http://{}", server.addr);
        shutdown.received().await;
        tracing::info!("shutting down");
        server.shutdown();
        server.wait().await
    })
}

/// SIGINT/SIGTERM listeners, installed before the server announces itself: a signal that
/// arrives once "listening on" is printed must stop the server, not kill it.
struct ShutdownSignal {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    fn install() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(interrupt), Ok(terminate)) => Some((interrupt, terminate)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGINT/SIGTERM; falling back to Ctrl-C only");
                    None
                }
            };
            ShutdownSignal { streams }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    async fn received(self) {
        #[cfg(unix)]
        if let Some((mut interrupt, mut terminate)) = self.streams {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read config file {}", file.display()))?;
    config::parse_file(file, &text)?;
    println!("{}: ok", file.display());
    Ok(())
}

fn create_token(args: &ServerArgs, role: Role, name: &str, expires_in: Option<PromDuration>) -> anyhow::Result<()> {
    let config = args.load()?;
    runtime()?.block_on(async move {
        let location = config.state_location();
        if let hubmon_state::StoreLocation::Sqlite(path) = &location {
            anyhow::ensure!(
                path.exists(),
                "no state store at {}; start `hubmon serve` once with this --data-dir, or pass --data-dir/--state-url",
                path.display()
            );
        }
        let store: Arc<dyn StateStore> =
            Arc::new(SqlStore::open(&location, config.state.connect_timeout.as_duration()).await?);
        let auth =
            crate::auth::Auth::new(store.clone(), config.auth.session_ttl, config.auth.login_attempts_per_minute);
        let issued = auth.create_token(name, role, expires_in, "cli").await?;
        store.close().await;
        println!("{}", issued.secret);
        eprintln!(
            "hubmon: created {} token {:?} (id {}, prefix {}); it is shown only this once",
            issued.token.role, issued.token.name, issued.token.id, issued.token.prefix
        );
        Ok(())
    })
}
