//! `rampart serve --config rampart.toml`: every `serve` flag as a key of a
//! TOML file, with the precedence flag > environment (`RAMPART_*`) > file >
//! default.
//!
//! The file is folded into the command line: a key whose flag was given
//! neither on the command line nor in the environment becomes that flag, and
//! clap parses the whole again, so every value from the file meets the same
//! validation as a flag. Keys are the flags' names with `_` or `-`
//! (`max_batch` or `max-batch`); a `true` boolean is the bare flag.

use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;
use clap::parser::ValueSource;

use super::Cli;

/// Why the configuration is unusable: exit 64, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The `serve` subcommand's definition.
fn serve_command() -> clap::Command {
    Cli::command()
        .find_subcommand("serve")
        .cloned()
        .unwrap_or_else(|| clap::Command::new("serve"))
}

/// Flags a file may not set: they are about the file itself.
const NOT_IN_FILE: &[&str] = &["config", "print_config", "help"];

/// Tables of the file that are not flags: the front ends' mappings
/// (`[ext_authz]`, `[authzen]`), which `serve` reads with [`section`].
pub const SECTIONS: &[&str] = &["ext_authz", "authzen"];

/// The table `name` of the config file at `path`, as `T`; `None` when the
/// file has no such table. An error names the file, the table and the key.
pub fn section<T: serde::de::DeserializeOwned>(
    path: &Path,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read the config `{}`: {e}", path.display())))?;
    let mut table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: not valid TOML: {e}", path.display())))?;
    let Some(value) = table.remove(name) else {
        return Ok(None);
    };
    if !value.is_table() {
        return Err(ConfigError(format!(
            "{}: `{name}` is a table (`[{name}]`)",
            path.display()
        )));
    }
    value.try_into().map(Some).map_err(|e: toml::de::Error| {
        ConfigError(format!(
            "{}: in `[{name}]`: {}",
            path.display(),
            e.message()
        ))
    })
}

/// The table `name` of the config file at `path`, read as `C` and built
/// into what serves it by `build`; `None` without a file or without the
/// table. An error names the file and the table.
pub fn built_section<C, M, E>(
    path: Option<&Path>,
    name: &str,
    build: impl FnOnce(&C) -> Result<M, E>,
) -> Result<Option<M>, ConfigError>
where
    C: serde::de::DeserializeOwned,
    E: std::fmt::Display,
{
    let Some(path) = path else {
        return Ok(None);
    };
    let Some(table) = section::<C>(path, name)? else {
        return Ok(None);
    };
    build(&table)
        .map(Some)
        .map_err(|e| ConfigError(format!("{}: in `[{name}]`: {e}", path.display())))
}

/// `argv` with the file's settings folded in (unchanged without a
/// `--config`/`RAMPART_CONFIG`).
pub fn fold(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    // Parse once as given: which flags came from where, and the file's path.
    let Ok(matches) = Cli::command().try_get_matches_from(&argv) else {
        // Let the real parse report the usage error.
        return Ok(argv);
    };
    let Some(("serve", serve)) = matches.subcommand() else {
        return Ok(argv);
    };
    let Some(path) = serve.get_one::<std::path::PathBuf>("config").cloned() else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError(format!("cannot read the config `{}`: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: not valid TOML: {e}", path.display())))?;
    let command = serve_command();
    let mut folded = argv.clone();
    for (key, value) in &table {
        if SECTIONS.contains(&key.as_str()) {
            continue;
        }
        let id = key.replace('-', "_");
        let at = || format!("{}: key `{key}`", path.display());
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && !NOT_IN_FILE.contains(&id.as_str()))
        else {
            return Err(ConfigError(format!(
                "{}: not a `rampart serve` setting (see `rampart serve --help`)",
                at()
            )));
        };
        let from_above = matches!(
            serve.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if from_above {
            continue;
        }
        let long = arg.get_long().unwrap_or(id.as_str());
        let flag = OsString::from(format!("--{long}"));
        let takes_value = arg.get_action().takes_values();
        let mut extra: Vec<OsString> = Vec::new();
        match value {
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    extra.push(flag);
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    extra.push(flag.clone());
                    extra.push(scalar(item).ok_or_else(|| {
                        ConfigError(format!("{}: a list of strings or numbers", at()))
                    })?);
                }
            }
            other => {
                let text = scalar(other)
                    .ok_or_else(|| ConfigError(format!("{}: a string, number or boolean", at())))?;
                if !takes_value {
                    return Err(ConfigError(format!("{}: `true` or `false`", at())));
                }
                extra.push(flag);
                extra.push(text);
            }
        }
        // Each key on its own first, so an error names it.
        let mut alone = argv.clone();
        alone.extend(extra.iter().cloned());
        if let Err(e) = Cli::command().try_get_matches_from(&alone) {
            let why = e.render().to_string();
            let why = why
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            return Err(ConfigError(format!("{}: {why}", at())));
        }
        folded.extend(extra);
    }
    Ok(folded)
}

fn scalar(value: &toml::Value) -> Option<OsString> {
    match value {
        toml::Value::String(s) => Some(s.into()),
        toml::Value::Integer(i) => Some(i.to_string().into()),
        toml::Value::Float(f) => Some(f.to_string().into()),
        toml::Value::Boolean(b) => Some(b.to_string().into()),
        _ => None,
    }
}

/// Environment variables read directly (not through a flag) that hold
/// secrets: shown only as set or not.
const SECRET_ENV: &[&str] = &["RAMPART_TOKENS", "RAMPART_FOLLOW_TOKEN"];

/// `rampart serve --print-config`: the effective settings as TOML, each
/// with where it came from (`argv` as given, `folded` with the file's
/// settings); secrets redacted.
pub fn render(argv: &[OsString], folded: &[OsString], config: Option<&Path>) -> String {
    let mut out = String::from("# rampart serve: the effective configuration\n");
    if let Some(p) = config {
        out.push_str(&format!("# config file: {}\n", p.display()));
    }
    let (Ok(given), Ok(matches)) = (
        Cli::command().try_get_matches_from(argv),
        Cli::command().try_get_matches_from(folded),
    ) else {
        return out;
    };
    let (Some(("serve", given)), Some(("serve", serve))) =
        (given.subcommand(), matches.subcommand())
    else {
        return out;
    };
    for arg in serve_command().get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_IN_FILE.contains(&id) || id == "version" {
            continue;
        }
        let source = match serve.value_source(id) {
            Some(ValueSource::CommandLine)
                if given.value_source(id) == Some(ValueSource::CommandLine) =>
            {
                "flag"
            }
            Some(ValueSource::CommandLine) => "file",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let mut values: Vec<String> = serve
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if id == "store" {
            // The store URL may carry a password.
            values = values.iter().map(|v| super::serve::pg::redact(v)).collect();
        }
        let line = match values.as_slice() {
            [] => format!("# {id} (unset)"),
            [one] => format!("{id} = {}", toml_value(one)),
            many => format!(
                "{id} = [{}]",
                many.iter()
                    .map(|v| toml_value(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push_str(&format!("{line:<48} # {source}\n"));
    }
    for name in SECRET_ENV {
        let set = std::env::var_os(name).is_some_and(|v| !v.is_empty());
        out.push_str(&format!(
            "# {name}: {}\n",
            if set { "set (redacted)" } else { "not set" }
        ));
    }
    out
}

/// A value as TOML: a number or boolean bare, anything else quoted.
fn toml_value(text: &str) -> String {
    if text.parse::<i64>().is_ok() || text == "true" || text == "false" {
        text.to_owned()
    } else {
        let mut quoted = String::with_capacity(text.len() + 2);
        quoted.push('"');
        for c in text.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    }
}
