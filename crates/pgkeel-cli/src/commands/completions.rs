//! `pgkeel completions SHELL` and `pgkeel man`: shell completion scripts and man pages, generated
//! from the same clap definition as `--help`, so they cannot drift from the flags. They read no
//! configuration and reach no database.

use std::path::PathBuf;

use clap::Args;
use clap_complete::Shell;

use crate::exit_codes;

#[derive(Debug, Args)]
#[command(after_help = "\
Install, for example:
  bash:  pgkeel completions bash > ~/.local/share/bash-completion/completions/pgkeel
  zsh:   pgkeel completions zsh > \"${fpath[1]}/_pgkeel\"
  fish:  pgkeel completions fish > ~/.config/fish/completions/pgkeel.fish")]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Read one without installing: pgkeel man | man -l -
Install: pgkeel man --out-dir ~/.local/share/man/man1")]
pub struct ManArgs {
    /// Write pgkeel.1 and one page per subcommand (pgkeel-migrate.1, …) into DIR instead of
    /// printing pgkeel.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "pgkeel", &mut out);
    write_stdout(&out)
}

pub fn man(args: ManArgs, cmd: clap::Command) -> anyhow::Result<i32> {
    let cmd = cmd.name("pgkeel");
    match args.out_dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            write_stdout(&out)
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            let pages = pages(cmd);
            for (name, page) in &pages {
                let path = dir.join(format!("{name}.1"));
                std::fs::write(&path, page)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
            eprintln!("wrote {} man pages into {}", pages.len(), dir.display());
            Ok(exit_codes::SUCCESS)
        }
    }
}

/// `(file stem, roff)` of the top page and of every subcommand, nested ones included
/// (`pgkeel-backup-full`).
fn pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    let mut cmd = cmd;
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, "pgkeel", &mut pages);
    pages
}

fn collect(cmd: &clap::Command, name: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    let mut page = Vec::new();
    let named = cmd.clone().name(name.to_string());
    if clap_mangen::Man::new(named).render(&mut page).is_ok() {
        pages.push((name.to_string(), page));
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        collect(sub, &format!("{name}-{}", sub.get_name()), pages);
    }
}

/// Through the crate's `print!`, which treats a closed pipe (`| head`) as the reader's "enough".
fn write_stdout(bytes: &[u8]) -> anyhow::Result<i32> {
    print!("{}", String::from_utf8_lossy(bytes));
    Ok(exit_codes::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_subcommand_gets_a_man_page() {
        let cmd = clap::Command::new("x")
            .subcommand(clap::Command::new("backup").subcommand(clap::Command::new("full")))
            .subcommand(clap::Command::new("migrate"));
        let names: Vec<String> = super::pages(cmd).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "pgkeel",
                "pgkeel-backup",
                "pgkeel-backup-full",
                "pgkeel-migrate"
            ]
        );
    }
}
