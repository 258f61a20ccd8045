//! The `quicksilver` binary: parse configuration, set up logging, run the hub until SIGINT or
//! SIGTERM, and map startup failures to exit codes (64 for bad configuration).
use std::process::ExitCode;

use clap::Parser;
use quicksilver::config::{self, Cli, Command, Config, LogFormat, ProcessEnv};
use quicksilver::server::{self, StartupError};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// EX_USAGE from sysexits.h: the configuration is wrong.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    // First, before the runtime allocates much: see `alloc::disable_transparent_huge_pages`.
    let thp = quicksilver::alloc::disable_transparent_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return if usage_error {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(Command::Token(args)) = &cli.command {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return match config::mint_token(args, now) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("quicksilver token: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    let config = match config::load(&cli, &ProcessEnv) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("quicksilver: invalid configuration:\n{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Err(e) = thp {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off: idle memory may grow");
    }
    raise_open_files_limit();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.workers {
        builder.worker_threads(workers);
    }
    let runtime = match builder
        .on_thread_park(quicksilver::alloc::on_thread_park)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quicksilver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartupError::Keys(_)) => {
            eprintln!("quicksilver: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("quicksilver: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), StartupError> {
    let dev_secret = config.dev_secret.clone();
    let signal = shutdown_signal();
    let running = server::start(config).await?;
    if let Some(secret) = dev_secret {
        print_dev_banner(&secret, running.addr, running.tls_addr);
    }
    signal.await;
    running.shutdown().await;
    Ok(())
}

/// Every subscriber holds a socket: raise the soft open-files limit to the hard one and say
/// what the hub can hold. (Accept failures past it are backed off in `server`, not fatal.)
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let limit = getrlimit(Resource::Nofile);
        let raised = match (limit.current, limit.maximum) {
            (Some(soft), hard) if hard.is_none_or(|h| h > soft) => {
                let new = rustix::process::Rlimit {
                    current: hard,
                    maximum: hard,
                };
                setrlimit(Resource::Nofile, new)
                    .map_err(|e| tracing::warn!(error = %e, "cannot raise the open files limit"))
                    .is_ok()
            }
            _ => false,
        };
        let now = getrlimit(Resource::Nofile);
        tracing::info!(
            soft = ?now.current,
            hard = ?now.maximum,
            raised,
            "open files limit (each connection uses one)"
        );
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Installs the SIGINT/SIGTERM handlers now (so a signal arriving during startup is not
/// fatal) and returns a future resolving at the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {},
                        _ = term.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// First-try mode: print tokens signed with the generated secret and commands to paste.
fn print_dev_banner(
    secret: &str,
    addr: Option<std::net::SocketAddr>,
    tls_addr: Option<std::net::SocketAddr>,
) {
    let mut audiences = Vec::new();
    for (scheme, a) in [("http", addr), ("https", tls_addr)] {
        if let Some(a) = a {
            for host in ["localhost".to_owned(), a.ip().to_string()] {
                audiences.push(format!(
                    "{scheme}://{host}:{}/.well-known/mercure",
                    a.port()
                ));
            }
        }
    }
    let token = |action: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = serde_json::json!({
            "iss": quicksilver::config::DEFAULT_ISSUER,
            "aud": audiences,
            "sub": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "client_id": quicksilver::config::DEFAULT_ISSUER,
            "iat": now,
            "exp": now + 24 * 3600,
            "jti": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "authorization_details": [{
                "type": "https://mercure.rocks/authorization-detail",
                "actions": [action],
                "topics": [{"match": "*"}],
            }],
        });
        quicksilver::auth::mint(&claims, secret, quicksilver::auth::Algorithm::HS256)
            .unwrap_or_else(|e| format!("<could not mint: {e}>"))
    };
    let publisher = token("publish");
    let subscriber = token("subscribe");
    let base = match (addr, tls_addr) {
        (Some(a), _) => format!("http://localhost:{}", a.port()),
        (None, Some(a)) => format!("https://localhost:{}", a.port()),
        (None, None) => return,
    };
    println!(
        "\nQuicksilver is running in first-try mode: no key was configured, so a random secret was\n\
         generated for this run, anonymous subscribers are on, and it listens on loopback only.\n\
         Configure --publisher-jwt-key / --subscriber-jwt-key for production.\n\n\
         Publisher token (24 h, publish \"*\"):\n{publisher}\n\n\
         Subscriber token (24 h, subscribe \"*\"):\n{subscriber}\n\n\
         Subscribe (in one terminal):\n  curl -N '{base}/.well-known/mercure?match=https://example.com/books/1'\n\n\
         Publish (in another):\n  curl -d topic=https://example.com/books/1 -d 'data={{\"status\": \"updated\"}}' \\\n    \
         -H 'Authorization: Bearer {publisher}' {base}/.well-known/mercure\n"
    );
}
