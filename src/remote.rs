//! `rvvmm remote`: a client of the API socket (rvvmm's, or cloud-hypervisor's: same paths).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "rvvmm remote",
    about = "Drive a VMM through its API socket (rvvmm --api-socket PATH, or cloud-hypervisor's)",
    after_help = "Prints the answer's JSON body, if any. Exit status: 0 when the API answered 2xx, 1 otherwise \
        (one line `rvvmm: error: ...`),\n2 for usage errors.\nExample: rvvmm remote --api-socket /tmp/vm.sock create vm.json && \
        rvvmm remote --api-socket /tmp/vm.sock boot"
)]
struct RemoteCli {
    /// The API socket.
    #[arg(long, value_name = "PATH")]
    api_socket: PathBuf,

    /// What to do.
    command: Command,

    /// For `create`: the VM configuration (cloud-hypervisor's JSON), a file or - for standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

/// The commands, one per endpoint.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Command {
    /// GET vmm.ping
    Ping,
    /// GET vm.info
    Info,
    /// GET vm.counters
    Counters,
    /// PUT vm.create with FILE's JSON
    Create,
    /// PUT vm.boot
    Boot,
    /// PUT vm.pause
    Pause,
    /// PUT vm.resume
    Resume,
    /// PUT vm.shutdown
    Shutdown,
    /// PUT vm.reboot
    Reboot,
    /// PUT vm.power-button
    PowerButton,
    /// PUT vm.delete
    Delete,
    /// PUT vmm.shutdown
    ShutdownVmm,
}

impl Command {
    fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            Command::Ping => ("GET", "vmm.ping"),
            Command::Info => ("GET", "vm.info"),
            Command::Counters => ("GET", "vm.counters"),
            Command::Create => ("PUT", "vm.create"),
            Command::Boot => ("PUT", "vm.boot"),
            Command::Pause => ("PUT", "vm.pause"),
            Command::Resume => ("PUT", "vm.resume"),
            Command::Shutdown => ("PUT", "vm.shutdown"),
            Command::Reboot => ("PUT", "vm.reboot"),
            Command::PowerButton => ("PUT", "vm.power-button"),
            Command::Delete => ("PUT", "vm.delete"),
            Command::ShutdownVmm => ("PUT", "vmm.shutdown"),
        }
    }
}

fn fail(msg: String) -> ExitCode {
    eprintln!("rvvmm: error: {}", msg.replace('\n', " "));
    ExitCode::from(1)
}

/// Runs `rvvmm remote ...` (the arguments after the program name).
pub fn main() -> ExitCode {
    let args = std::env::args_os().skip(1);
    let cli = match RemoteCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return crate::usage_error(e),
    };
    let body = match (cli.command, &cli.file) {
        (Command::Create, None) => {
            return fail("create needs a FILE with the VM configuration (or - for stdin)".into())
        }
        (Command::Create, Some(f)) => {
            let mut text = String::new();
            let read = if f.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text).map(|_| ())
            } else {
                std::fs::read_to_string(f).map(|t| text = t)
            };
            if let Err(e) = read {
                return fail(format!("cannot read {}: {e}", f.display()));
            }
            Some(text)
        }
        (_, Some(f)) => return fail(format!("unexpected argument {}", f.display())),
        (_, None) => None,
    };
    let (method, name) = cli.command.endpoint();
    match api::client::request(&cli.api_socket, method, name, body.as_deref()) {
        Ok((status, body)) if (200..300).contains(&status) => {
            if !body.is_empty() {
                let pretty = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(body);
                println!("{pretty}");
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let why = serde_json::from_str::<Vec<String>>(&body)
                .map(|m| m.join(": "))
                .unwrap_or(body);
            fail(format!(
                "{name}: {status} {}: {why}",
                api::http::reason(status)
            ))
        }
        Err(e) => fail(format!("{name}: {e}")),
    }
}
