//! `cais`: the one binary. Glue only; the logic lives in the library crates.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cais", version, about = "A container platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI distribution registry server.
    #[command(subcommand)]
    Registry(cais_registry::cli::Command),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Registry(cmd) => cais_registry::cli::run(cmd),
    }
}
