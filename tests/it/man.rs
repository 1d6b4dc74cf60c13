//! `ravencert man`: the man page is generated from the clap definition, so it names every
//! command and every option that `--help` shows.

use crate::common::Env;
use clap::CommandFactory;
use ravencert::cli::Cli;

/// The man page as text to search: roff's escaped hyphens (`\-`) and font changes dropped.
fn man_page(env: &Env) -> String {
    let run = env.run(&["man"]).success();
    assert!(run.stdout.starts_with(".ie "), "not roff:\n{}", run.stdout);
    assert!(run.stdout.contains(".TH ravencert 1"), "{}", run.stdout);
    run.stdout
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
}

/// The `--long` flags a help text shows.
fn long_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn the_man_page_names_every_command_and_every_long_flag_of_help() {
    let env = Env::new();
    let man = man_page(&env);
    let top = env.run(&["--help"]).success().stdout;
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(commands.iter().any(|c| c == "bundle") && commands.iter().any(|c| c == "man"));
    for flag in long_flags(&top) {
        assert!(man.contains(&flag), "the man page lacks {flag} of --help");
    }
    for command in &commands {
        assert!(top.contains(command.as_str()), "--help lacks {command}");
        assert!(
            man.contains(&format!(".SH \"RAVENCERT {}\"", command.to_uppercase())),
            "the man page has no section for {command}"
        );
        let help = env.run(&[command.as_str(), "--help"]).success().stdout;
        let section = section_of(&man, command);
        for flag in long_flags(&help) {
            // Global options are described once, on the main page.
            let global = ["--config", "--store", "--color"].contains(&flag.as_str());
            let place = if global { man.as_str() } else { section };
            assert!(
                place.contains(&flag),
                "the man page's section of {command} lacks {flag} (from `{command} --help`)"
            );
        }
    }
}

#[test]
fn the_clap_definition_and_the_man_page_agree_on_every_long_flag() {
    let env = Env::new();
    let man = man_page(&env);
    let cli = Cli::command();
    for arg in cli.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            assert!(man.contains(&format!("--{long}")), "--{long} missing");
        }
    }
    for command in cli.get_subcommands() {
        let section = section_of(&man, command.get_name());
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    section.contains(&format!("--{long}")),
                    "{} --{long} missing from its section",
                    command.get_name()
                );
            }
        }
    }
}

/// The text of a command's section, up to the next section.
fn section_of<'a>(man: &'a str, command: &str) -> &'a str {
    let title = format!(".SH \"RAVENCERT {}\"", command.to_uppercase());
    let start = man
        .find(&title)
        .unwrap_or_else(|| panic!("no section {title}"));
    let rest = &man[start + title.len()..];
    &rest[..rest.find("\n.SH ").unwrap_or(rest.len())]
}
