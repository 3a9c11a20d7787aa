use crm_shared::config::Settings;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(settings) = Settings::load_or_report() else { return ExitCode::FAILURE };
    crm_shared::telemetry::init(&settings);
    let shutdown = crm_shared::shutdown::on_signal();
    match crm_scheduler::run(settings, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
