//! The `xacct` binary: see `xacct --help`.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = xacct::cli::Cli::parse();
    xacct::cli::logging::init(cli.log_format, cli.default_log_filter());
    let status = xacct::cli::run(cli).await;
    std::process::exit(status);
}
