//! What can be checked of `docker/Dockerfile` without a Docker engine: it builds this package's
//! binary and runs that binary, as a user other than root, with a command the binary has, and it
//! exposes every service's ports.

use std::{collections::BTreeSet, path::Path, process::Command};

const CRM: &str = env!("CARGO_BIN_EXE_crm");

/// The Dockerfile's instructions, continuation lines joined, comments left out.
fn instructions() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker/Dockerfile");
    let text = std::fs::read_to_string(path).expect("docker/Dockerfile");
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        match line.trim_end().strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    joined.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    joined
        .into_iter()
        .map(|line| {
            let (keyword, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            (keyword.to_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

fn only(keyword: &str) -> String {
    let found: Vec<String> = instructions()
        .into_iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(found.len(), 1, "one {keyword} in the Dockerfile: {found:?}");
    found.into_iter().next().unwrap()
}

/// `["a", "b"]` (the exec form) as its words.
fn exec_form(value: &str) -> Vec<String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{value} is in exec form"));
    inner
        .split(',')
        .map(|word| word.trim().trim_matches('"').to_owned())
        .collect()
}

/// The services the binary holds: (name, gRPC port, metrics port).
fn services() -> Vec<(String, u16, u16)> {
    let output = Command::new(CRM).arg("services").output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (
                fields[0].to_owned(),
                fields[1].parse().unwrap(),
                fields[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_image_builds_and_runs_this_binary() {
    let build = instructions()
        .into_iter()
        .find(|(k, rest)| k == "RUN" && rest.contains("cargo build"))
        .expect("a cargo build step")
        .1;
    assert!(
        build.contains("--release") && build.contains("--locked") && build.contains("-p crm "),
        "{build}"
    );
    let bin = Path::new(CRM).file_name().unwrap().to_string_lossy();
    assert!(build.contains(&format!("target/release/{bin} ")), "{build}");

    // The runtime stage copies what the build installed to where the entrypoint runs it.
    let copy = instructions()
        .into_iter()
        .find(|(k, rest)| k == "COPY" && rest.starts_with("--from=build"))
        .expect("a copy from the build stage")
        .1;
    let [_, from, to] = copy.split_whitespace().collect::<Vec<_>>()[..] else {
        panic!("COPY --from=build <binary> <path>: {copy}");
    };
    assert!(
        build.ends_with(&format!(" {from}")),
        "{build} installs {from}"
    );
    assert_eq!(exec_form(&only("ENTRYPOINT")), [to]);

    // The default command is one the binary has.
    let command = exec_form(&only("CMD"));
    let ran = Command::new(CRM).args(&command).output().unwrap();
    assert!(ran.status.success(), "crm {command:?}: {ran:?}");
}

#[test]
fn the_image_runs_as_a_user_other_than_root_and_exposes_every_service() {
    let user = only("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_ne!(uid, 0);

    let exposed: BTreeSet<u16> = only("EXPOSE")
        .split_whitespace()
        .map(|port| port.parse().unwrap())
        .collect();
    let ports: BTreeSet<u16> = services()
        .into_iter()
        .flat_map(|(_, grpc, metrics)| [grpc, metrics])
        .collect();
    assert_eq!(
        exposed, ports,
        "EXPOSE lists every service's gRPC and metrics port"
    );
}
