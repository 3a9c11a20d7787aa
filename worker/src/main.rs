use clap::Parser;
use crm_shared::config::Settings;
use crm_shared::jobs::{Queue, parse_queue_list};
use crm_worker::WorkerOptions;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "crm-worker", about = "Runs the CRM's background jobs")]
struct Cli {
    /// Comma-separated queues to take jobs from.
    #[arg(long, default_value = "imports,exports,reports,emails,system", value_parser = parse_queue_list)]
    queues: std::vec::Vec<Queue>,
    /// Jobs run at once, per queue.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(settings) = Settings::load_or_report() else { return ExitCode::FAILURE };
    crm_shared::telemetry::init(&settings);
    let shutdown = crm_shared::shutdown::on_signal();
    let options = WorkerOptions { queues: cli.queues, concurrency: usize::from(cli.concurrency) };
    match crm_worker::run(settings, options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
