use clap::Parser;
use crm_api::Application;
use crm_api::cli::{self, Cli, Command};
use crm_shared::config::Settings;
use crm_shared::seed::{self, SeedPlan};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(settings) = Settings::load_or_report() else { return ExitCode::FAILURE };
    crm_shared::telemetry::init(&settings);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let shutdown = crm_shared::shutdown::on_signal();
            Application::build(settings).await?.run_until_stopped(shutdown).await
        }
        Command::Migrate => {
            let pool = crm_shared::db::pool(&settings)?;
            cli::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateTenant(args) => {
            let pool = crm_shared::db::pool(&settings)?;
            let created = cli::create_tenant(&pool, &args).await.map_err(describe)?;
            println!("{}", serde_json::to_string(&created)?);
            Ok(())
        }
        Command::SeedDemo(args) => {
            let pool = crm_shared::db::pool(&settings)?;
            let plan = SeedPlan {
                tenant_name: args.tenant_name,
                admin_email: args.admin_email,
                password: args.password,
                leads: args.leads,
            };
            let report = seed::seed_demo(&pool, &plan).await.map_err(describe)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

/// One readable line for a command-line failure.
fn describe(error: crm_shared::DomainError) -> anyhow::Error {
    match error {
        crm_shared::DomainError::Validation(errors) => {
            anyhow::anyhow!(errors.0.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "))
        }
        other => anyhow::anyhow!(other),
    }
}
