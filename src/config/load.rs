//! Building `Config` from its layers: defaults < TOML file (`--config`) < environment
//! (`QUICKSILVER_<NAME>` and the reference image's `MERCURE_*`) < CLI flags. All problems are
//! reported together, each with its key.
use super::Config;

/// Command-line flags. Every setting is optional here so layers can be told apart.
#[derive(Debug, Default, clap::Parser)]
#[command(name = "quicksilver", version, about = "A Mercure hub")]
pub struct Cli {
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Where environment variables come from (tests pass a map instead of mutating the process).
pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Every configuration problem found, as (key, reason).
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<(String, String)>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (key, reason) in &self.0 {
            writeln!(f, "{key}: {reason}")?;
        }
        Ok(())
    }
}

/// Builds the validated configuration.
pub fn load(cli: &Cli, env: &dyn EnvSource) -> Result<Config, ConfigErrors> {
    let _ = (cli, env);
    unimplemented!()
}
