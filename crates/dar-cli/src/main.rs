//! `dar`: keys, tokens, test vectors, benchmarks, the server, the demo, staff review of
//! lockout recoveries and load runs for Delegated Account Recovery.
//!
//! The command line is a contract that scripts and conformance checks rely on (see the
//! repository README): exit status 0 means valid, 1 invalid (with the error's stable code), 2 a
//! usage error. With `--json` each command prints exactly one JSON object on stdout.

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod bench;
mod cli;
mod demo_cmd;
mod input;
mod load;
mod output;
mod recoveries_cmd;
mod token_cmd;
mod vectors;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{
    Cli, Command, CountersignedCommand, OpenapiArgs, ServeArgs, TokenCommand, VectorsCommand,
};
use crate::output::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => token_cmd::keygen(&args),
        Command::Token(TokenCommand::Inspect(args)) => token_cmd::inspect(&args),
        Command::Token(TokenCommand::Verify(args)) => token_cmd::verify(&args),
        Command::Token(TokenCommand::Issue(args)) => token_cmd::issue(&args),
        Command::Token(TokenCommand::Decrypt(args)) => token_cmd::decrypt(&args),
        Command::Countersign(args) => token_cmd::countersign(&args),
        Command::Countersigned(CountersignedCommand::Verify(args)) => {
            token_cmd::verify_countersigned(&args)
        }
        Command::Vectors(VectorsCommand::Generate(args)) => vectors::generate(&args),
        Command::Vectors(VectorsCommand::Check(args)) => vectors::check(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Serve(args) => serve(&args),
        Command::Demo(args) => demo_cmd::run(&args),
        Command::Recoveries(args) => recoveries_cmd::run(&args),
        Command::Openapi(args) => openapi(&args),
        Command::Load(args) => load::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("dar: {message}");
            ExitCode::from(2)
        }
    }
}

/// `dar serve --config FILE [--check]`: loads the configuration and its key files, then runs
/// the server until SIGINT or SIGTERM (or, with `--check`, reports and exits).
fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let invalid = |e: &dyn std::fmt::Display| {
        eprintln!("dar: invalid configuration: {e}");
        Failure::Invalid
    };
    let config = dar_server::config::Config::load(&args.config).map_err(|e| invalid(&e))?;
    if args.check {
        dar_server::AppState::load(&config).map_err(|e| invalid(&e))?;
        if let dar_server::config::TlsSettings::Files { cert, key } = &config.tls {
            dar_server::tls::server_config_from_pem_files(cert, key).map_err(|e| invalid(&e))?;
        }
        let roles: Vec<&str> = [
            config.account_provider.as_ref().map(|_| "account provider"),
            config
                .recovery_provider
                .as_ref()
                .map(|_| "recovery provider"),
        ]
        .into_iter()
        .flatten()
        .collect();
        println!(
            "{}: valid ({}; {} on https://{})",
            args.config.display(),
            roles.join(" and "),
            config.public_origin,
            config.listen
        );
        return Ok(());
    }
    dar_server::init_tracing(&config.log).map_err(|e| Failure::usage(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(dar_server::serve(config)).map_err(|e| {
        eprintln!("dar: serve: {e}");
        Failure::Invalid
    })
}

/// `dar openapi [--config FILE]`: prints the OpenAPI description as JSON.
fn openapi(args: &OpenapiArgs) -> Result<(), Failure> {
    let doc = match &args.config {
        Some(file) => {
            let config = dar_server::config::Config::load(file).map_err(|e| {
                eprintln!("dar: invalid configuration: {e}");
                Failure::Invalid
            })?;
            dar_server::openapi_for(&config)
        }
        None => dar_server::openapi(),
    };
    let text = dar_server::openapi::to_json(&doc)
        .map_err(|e| Failure::usage(format!("cannot print the description: {e}")))?;
    print!("{text}");
    Ok(())
}
