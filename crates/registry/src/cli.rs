//! `cais registry ...` subcommands.

/// `cais registry <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the OCI distribution API.
    Serve,
}

/// Runs one `cais registry` command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => anyhow::bail!("registry serve is not built yet"),
    }
}
