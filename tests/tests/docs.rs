//! The man pages and shell completions each binary writes with `generate-docs`, judged by
//! groff (the pages render, with their flags in them) and bash (the completion loads and
//! completes a flag).

use e2e::{bin, require, run};
use std::path::Path;
use std::process::Command;

/// A binary, a man page it writes, flags that page must show, and a completion: the words
/// typed and the word that must complete.
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

const CASES: &[Case] = &[
    (
        "coreos-build",
        "coreos-build-image.1",
        &["--usr", "--output", "--no-bootloader", "Examples:"],
        &["image", "--no-b"],
        "--no-bootloader",
    ),
    (
        "coreos-build",
        "coreos-build-release.1",
        &["--signing-key", "--formats", "--board"],
        &["release", "--sign"],
        "--signing-key",
    ),
    (
        "coreos-install",
        "coreos-install.1",
        &["--device", "--insecure", "--retries", "Examples:"],
        &["--inse"],
        "--insecure",
    ),
    (
        "coreos-update",
        "coreos-update-apply.1",
        &[
            "--payload",
            "--key",
            "--base-url",
            "--force",
            "--allow-downgrade",
            "--retry-failed",
        ],
        &["apply", "--pay"],
        "--payload",
    ),
];

/// groff's terminal output with its overstrike bold and underline (`c\bc`, `_\bc`) removed.
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

fn generate(binary: &str, out: &Path) -> Vec<String> {
    let o = run(Command::new(bin(binary))
        .args(["generate-docs", "--output"])
        .arg(out));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn man_pages_render_and_completions_load() {
    require("groff");
    require("bash");
    let out = tempfile::tempdir().unwrap();
    for (binary, page, flags, words, completes) in CASES {
        let files = generate(binary, out.path());
        let page = out.path().join("man/man1").join(page);
        assert!(
            files.contains(&page.display().to_string()),
            "{binary} did not write {}: {files:?}",
            page.display()
        );
        let g = run(Command::new("groff")
            .args(["-man", "-Tutf8", "-ww"])
            .arg(&page));
        assert!(
            g.stderr.is_empty(),
            "groff warns about {}: {}",
            page.display(),
            String::from_utf8_lossy(&g.stderr)
        );
        let text = plain(&String::from_utf8_lossy(&g.stdout));
        for f in *flags {
            assert!(text.contains(f), "{} lacks {f}:\n{text}", page.display());
        }

        let script = out
            .path()
            .join("completions/bash")
            .join(format!("{binary}.bash"));
        let function = format!("_{}", binary.replace('-', "__"));
        let typed: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cword = words.len();
        let prev = if cword > 1 { words[cword - 2] } else { binary };
        let current = words[cword - 1];
        let shell = format!(
            "source '{}' && complete -p {binary} >/dev/null && \
             COMP_WORDS=({binary} {}) && COMP_CWORD={cword} && \
             {function} {binary} '{current}' '{prev}' && echo \"${{COMPREPLY[*]}}\"",
            script.display(),
            typed.join(" ")
        );
        let o = run(Command::new("bash").arg("-c").arg(&shell));
        let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(got, *completes, "{binary} {words:?}<TAB>: {shell}");
    }
    for f in ["zsh/_coreos-build", "fish/coreos-install.fish"] {
        assert!(out.path().join("completions").join(f).is_file(), "{f}");
    }
}

#[test]
fn generate_docs_is_not_in_the_help() {
    for binary in ["coreos-build", "coreos-install"] {
        let o = run(Command::new(bin(binary)).arg("--help"));
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(!help.contains("generate-docs"), "{binary} --help:\n{help}");
        assert!(help.contains("Examples:"), "{binary} --help:\n{help}");
    }
}
