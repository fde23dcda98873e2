use clap::Parser;

fn main() -> std::process::ExitCode {
    hubmon::cli::run(hubmon::cli::Cli::parse())
}
