//! `crm`: the whole suite in one binary.
//!
//! ```text
//! crm up [--config FILE] [--host ADDR]   every service in one process, no configuration needed
//! crm serve <service> [--config FILE]    one service (a container's command)
//! crm migrate <service> [--config FILE]  apply its migrations and exit (the Helm hook)
//! crm <task> <service> [--config FILE]   one of its operator commands, e.g. `crm verify loyalty`
//! crm dev-token [--subject S] [SCOPE…]   a development bearer token (every scope when none is named)
//! crm services                           the services it holds: ports, personal data, topics written
//! ```

mod up;

use std::process::ExitCode;

use crm_kit::{
    app::{self, Service},
    config::{Cli, Command, Config, ServiceSpec},
};

/// Every service of the suite, in the order `crm up` starts them.
const SERVICES: &[&Service] = &[
    &crm_parties::SERVICE,
    &crm_interactions::SERVICE,
    &crm_cases::SERVICE,
    &crm_consent::SERVICE,
    &crm_loyalty::SERVICE,
    &crm_rewards::SERVICE,
];

/// The suite as a whole, for commands that concern no one service (`dev-token`).
const SUITE: ServiceSpec = ServiceSpec {
    name: "crm",
    default_port: 50050,
};

const USAGE: &str = "usage:
  crm up [--config FILE] [--host ADDR]   every service in one process, no configuration needed
  crm serve <service> [--config FILE]    one service (a container's command)
  crm migrate <service> [--config FILE]  apply its migrations and exit
  crm <task> <service> [--config FILE]   one of its operator commands, e.g. `crm verify loyalty`
  crm dev-token [--subject S] [SCOPE...] a development bearer token (every scope when none is named)
  crm services                           the services it holds: ports, personal data, topics written";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("up") => up::run(&args[1..]).await,
        Some("dev-token") => dev_token(&args),
        Some("services") => {
            println!("service\tgrpc\tmetrics\tpersonal_data\ttopics");
            for service in SERVICES {
                let spec = service.spec;
                let topics = service.topics.join(",");
                let (grpc, admin) = (spec.default_port, spec.admin_port());
                let personal = service.privacy_participant;
                println!("{}\t{grpc}\t{admin}\t{personal}\t{topics}", spec.name);
            }
            ExitCode::SUCCESS
        }
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(command) if !command.starts_with('-') => service_command(command, &args[1..]).await,
        _ => usage_error("a command is needed"),
    }
}

/// `crm <command> <service> [--config FILE]`: the service's name may come anywhere among the
/// options; the command must be one the service has.
async fn service_command(command: &str, args: &[String]) -> ExitCode {
    let mut rest = vec![command.to_owned()];
    let mut name = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => {
                rest.push(arg.clone());
                rest.extend(args.next().cloned());
            }
            other if !other.starts_with('-') && name.is_none() => name = Some(other),
            _ => rest.push(arg.clone()),
        }
    }
    let Some(name) = name else {
        return usage_error(&format!("crm {command} needs a service"));
    };
    let Some(service) = SERVICES.iter().find(|s| s.spec.name == name) else {
        return usage_error(&format!("no service {name:?} in this binary"));
    };
    let tasks = service.tasks.iter().map(|t| t.name);
    let commands: Vec<&str> = ["serve", "migrate"].into_iter().chain(tasks).collect();
    if !commands.contains(&command) {
        return usage_error(&format!(
            "{name} has no command {command:?}; it has {}",
            commands.join(", ")
        ));
    }
    match Cli::from_args(rest) {
        Ok(cli) => app::run(service, cli).await,
        Err(message) => usage_error(message.lines().next().unwrap_or_default()),
    }
}

fn dev_token(args: &[String]) -> ExitCode {
    let cli = match Cli::from_args(args.iter().cloned()) {
        Ok(cli) => cli,
        Err(message) => return usage_error(message.lines().next().unwrap_or_default()),
    };
    let Command::DevToken { subject, scopes } = &cli.command else {
        return usage_error("crm dev-token takes --subject and scopes only");
    };
    let config = match Config::load(SUITE, cli.config_file.as_ref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crm: {error}");
            return ExitCode::from(2);
        }
    };
    let scopes: Vec<&str> = match scopes.is_empty() {
        true => crm_proto::checks::SCOPES.to_vec(),
        false => scopes.iter().map(String::as_str).collect(),
    };
    println!("{}", app::dev_token(&config, subject, &scopes));
    ExitCode::SUCCESS
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("crm: {message}\n{USAGE}\nservices: {}", names());
    ExitCode::from(2)
}

fn names() -> String {
    let names: Vec<&str> = SERVICES.iter().map(|s| s.spec.name).collect();
    names.join(", ")
}
