//! Man pages and shell completions generated from a binary's clap definition, so the docs
//! cannot drift from the flags. Every binary gets them the same way, with one line at the top
//! of its `main`:
//!
//! ```ignore
//! cli_docs::generate_if_asked::<Cli>();
//! ```
//!
//! after which `<binary> generate-docs --output DIR` (hidden: in no `--help`) writes
//! `DIR/man/man1/<binary>.1` (and `<binary>-<subcommand>.1` for each subcommand) and
//! `DIR/completions/{bash/<binary>.bash,zsh/_<binary>,fish/<binary>.fish}`, then exits. It refuses
//! a definition with a flag that has no help text, naming it.

#![forbid(unsafe_code)]

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The hidden first argument that asks for the docs.
pub const GENERATE: &str = "generate-docs";

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("{0} without help text: every flag and subcommand must say what it does")]
    MissingHelp(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// When the arguments are `generate-docs --output DIR`, write `C`'s docs into DIR and exit
/// (status 0, or 1 with the error); otherwise return and let the binary parse as usual.
pub fn generate_if_asked<C: CommandFactory>() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a == GENERATE) != Some(true) {
        return;
    }
    let cmd = C::command();
    let name = cmd.get_name().to_string();
    let matches = Command::new(GENERATE)
        .bin_name(format!("{name} {GENERATE}"))
        .about("Write the man pages and shell completions")
        .arg(
            clap::Arg::new("output")
                .long("output")
                .value_name("DIR")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Folder for man/ and completions/"),
        )
        .get_matches_from(&args[1..]);
    let out = matches.get_one::<PathBuf>("output").expect("required");
    match generate(cmd, out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{name}: error: {e}");
            std::process::exit(1);
        }
    }
}

/// Write the man pages and the bash, zsh and fish completions of `cmd` under `out`; returns
/// the files written.
pub fn generate(cmd: Command, out: &Path) -> Result<Vec<PathBuf>, DocsError> {
    // No `help` subcommands: they would get pages of their own.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let missing = missing_help(&cmd);
    if !missing.is_empty() {
        return Err(DocsError::MissingHelp(missing.join(", ")));
    }
    let name = cmd.get_name().to_string();
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DocsError::Write { path, source }
    };
    let man = out.join("man/man1");
    std::fs::create_dir_all(&man).map_err(write_err(&man))?;
    clap_mangen::generate_to(cmd.clone(), &man).map_err(write_err(&man))?;
    let mut files = list(&man, &name).map_err(write_err(&man))?;
    for (shell, dir) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        let file =
            clap_complete::generate_to(shell, &mut cmd, &name, &dir).map_err(write_err(&dir))?;
        if shell == Shell::Bash {
            fix_bash_states(&file, &name).map_err(write_err(&file))?;
        }
        files.push(file);
    }
    Ok(files)
}

/// clap_complete (4.6.12) spells a subcommand's state two ways in its bash script when the
/// binary's name has a hyphen: the word loop sets `coreos__build__subcmd__image`, the case arm
/// waits for `coreos__subcmd__build__subcmd__image`, so nothing after a subcommand completes
/// (clap issues 6421, 6529). Spell the arms as the loop does.
fn fix_bash_states(script: &Path, name: &str) -> std::io::Result<()> {
    if !name.contains('-') {
        return Ok(());
    }
    let text = std::fs::read_to_string(script)?;
    let fixed = text.replace(&name.replace('-', "__subcmd__"), &name.replace('-', "__"));
    if fixed != text {
        std::fs::write(script, fixed)?;
    }
    Ok(())
}

/// The man pages of `name` in `dir`, sorted.
fn list(dir: &Path, name: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let file = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if file.is_some_and(|f| f.starts_with(name) && f.ends_with(".1")) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Every visible flag, positional argument and subcommand of `cmd` (recursively) that has no
/// help text, as `<command path> <--flag>`. clap's own `--help`/`--version` are exempt.
pub fn missing_help(cmd: &Command) -> Vec<String> {
    fn walk(cmd: &Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                let shown = match (a.get_long(), a.get_short()) {
                    (Some(l), _) => format!("--{l}"),
                    (None, Some(s)) => format!("-{s}"),
                    (None, None) => format!("<{id}>"),
                };
                out.push(format!("`{path}` argument {shown}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                out.push(format!("`{sub_path}` subcommand"));
            }
            walk(sub, &sub_path, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, cmd.get_name(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Arg;

    fn tool() -> Command {
        Command::new("tool")
            .about("A tool")
            .arg(Arg::new("level").long("level").help("How much"))
            .subcommand(
                Command::new("run")
                    .about("Run it")
                    .arg(Arg::new("fast").long("fast").help("Quickly")),
            )
    }

    #[test]
    fn writes_a_page_per_command_and_three_completions() {
        let d = tempfile::tempdir().unwrap();
        let files = generate(tool(), d.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "man/man1/tool-run.1",
                "man/man1/tool.1",
                "completions/bash/tool.bash",
                "completions/zsh/_tool",
                "completions/fish/tool.fish"
            ]
        );
        let page = std::fs::read_to_string(d.path().join("man/man1/tool-run.1")).unwrap();
        assert!(page.contains("fast") && page.contains("Quickly"), "{page}");
    }

    /// Bash completes a subcommand's options for a binary with a hyphen in its name.
    #[test]
    fn bash_completes_subcommand_options_of_a_hyphenated_binary() {
        let d = tempfile::tempdir().unwrap();
        let cmd = Command::new("my-tool").about("A tool").subcommand(
            Command::new("run")
                .about("Run it")
                .arg(Arg::new("fast").long("fast").help("Quickly")),
        );
        generate(cmd, d.path()).unwrap();
        let script = d.path().join("completions/bash/my-tool.bash");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && COMP_WORDS=(my-tool run --f) && COMP_CWORD=2 && \
                 _my__tool my-tool --f run && echo \"${{COMPREPLY[*]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "--fast",
            "{out:?}"
        );
    }

    #[test]
    fn a_flag_without_help_is_refused_by_name() {
        let cmd = tool().subcommand(
            Command::new("stop")
                .about("Stop it")
                .arg(Arg::new("force").long("force")),
        );
        assert_eq!(missing_help(&cmd), ["`tool stop` argument --force"]);
        let d = tempfile::tempdir().unwrap();
        let e = generate(cmd, d.path()).unwrap_err().to_string();
        assert!(e.contains("`tool stop` argument --force"), "{e}");
        let undocumented = Command::new("t").subcommand(Command::new("x"));
        assert_eq!(missing_help(&undocumented), ["`t x` subcommand"]);
    }
}
