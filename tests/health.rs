//! `rampart health` as a probe runs it: the real binary against real
//! `rampart serve` processes (plaintext, TLS and mTLS, with tokens, a
//! replica that is not serving) and against ports where nothing answers,
//! asserting on the exit code, stdout and the one line on stderr.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::Ca;
use common::{BIN, Server, free_port};
use rampart::client::hash_hex;

/// What a run of the binary left.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `rampart health ARGS` with none of the client variables of this shell.
fn run(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(BIN);
    c.arg("health").args(args);
    for var in [
        "RAMPART_SERVER",
        "RAMPART_TOKEN",
        "RAMPART_CA",
        "RAMPART_CERT",
        "RAMPART_KEY",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn health(args: &[&str]) -> Out {
    run(args, &[])
}

/// A failure: stderr is one line, `rampart health: ...`.
fn one_line(out: &Out) -> &str {
    let line = out.stderr.strip_suffix('\n').unwrap_or(&out.stderr);
    assert!(
        line.starts_with("rampart health: ") && !line.contains('\n'),
        "{out:?}"
    );
    line
}

#[test]
fn a_serving_server_exits_0_and_prints_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(&dir.path().join("data"), port);
    let url = format!("http://127.0.0.1:{port}");

    let out = health(&["--server", &url]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "SERVING\n");
    assert_eq!(out.stderr, "");

    // The data plane's service by name; the scheme assumed; the variable
    // `ctl` reads.
    let out = health(&[
        "--server",
        &format!("127.0.0.1:{port}"),
        "--service",
        "rampart.v1.Authorization",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "SERVING\n"));
    let out = run(&[], &[("RAMPART_SERVER", &url)]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "SERVING\n"));

    // --quiet: the exit code only.
    let out = health(&["--server", &url, "-q"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
}

#[test]
fn a_service_the_server_does_not_know_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(&dir.path().join("data"), port);
    let url = format!("http://127.0.0.1:{port}");
    let out = health(&["--server", &url, "--service", "no.such.Service"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "SERVICE_UNKNOWN\n");
    let line = one_line(&out);
    assert!(
        line.contains("`no.such.Service`") && line.contains(&url),
        "{line}"
    );
}

#[test]
fn a_replica_that_has_not_caught_up_is_not_serving() {
    // A replica whose leader is not there: it listens, but never catches up.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let leader = format!("http://127.0.0.1:{}", free_port());
    let _replica = Server::start_with(&dir.path().join("data"), port, &["--follow", &leader]);
    let url = format!("http://127.0.0.1:{port}");
    for service in [&[][..], &["--service", "rampart.v1.Authorization"][..]] {
        let out = health(&[&["--server", url.as_str()][..], service].concat());
        assert_eq!(out.code, Some(1), "{service:?}: {out:?}");
        assert_eq!(out.stdout, "NOT_SERVING\n");
        let line = one_line(&out);
        assert!(
            line.contains(&url) && line.ends_with("is NOT_SERVING"),
            "{line}"
        );
    }
    let out = health(&["--server", &url, "-q"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(1), ""));
}

#[test]
fn nothing_listening_is_unreachable_69_naming_the_address() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = health(&["--server", &url]);
    assert_eq!(out.code, Some(69), "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        one_line(&out),
        format!("rampart health: connection refused by {url}")
    );
}

#[test]
fn a_server_that_never_answers_times_out_within_the_bound() {
    // The kernel accepts the connection (the backlog); nobody speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = health(&["--server", &url, "--timeout-ms", "300"]);
    let took = started.elapsed();
    assert_eq!(out.code, Some(69), "{out:?}");
    assert_eq!(
        one_line(&out),
        format!("rampart health: no answer from {url} within 300 ms")
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn usage_errors_exit_2_before_connecting() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = health(&["--server", &url, "--timeout-ms", "0"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = health(&["--server", &url, "--cert", "c.pem"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = health(&["--server", "https://127.0.0.1:1"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(one_line(&out).contains("CA"), "{out:?}");
    let out = health(&["--server", "https://127.0.0.1:1", "--ca", "/no/such/ca.pem"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(one_line(&out).contains("/no/such/ca.pem"), "{out:?}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_tls_server_with_the_ca_and_client_certificates() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = ca.leaf("rampart-server");
    let (client_cert, client_key) = ca.client(Some("probe"), &[]);
    let (stranger_cert, stranger_key) = other.client(Some("stranger"), &[]);
    let ca_pem = write(d, "ca.pem", &ca.pem());
    let other_pem = write(d, "other.pem", &other.pem());
    let port = free_port();
    let _server = Server::start_with(
        &d.join("data"),
        port,
        &[
            "--tls-cert",
            &write(d, "server.pem", &cert),
            "--tls-key",
            &write(d, "server.key", &key),
            "--tls-client-ca",
            &ca_pem,
        ],
    );
    let url = format!("https://127.0.0.1:{port}");

    // The CA that signed the server: SERVING; by flag or by variable.
    let out = health(&["--server", &url, "--ca", &ca_pem]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "SERVING\n");
    let out = run(&["--server", &url], &[("RAMPART_CA", &ca_pem)]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "SERVING\n"));
    // With a client certificate the server's CA signed (mTLS).
    let out = health(&[
        "--server",
        &url,
        "--ca",
        &ca_pem,
        "--cert",
        &write(d, "client.pem", &client_cert),
        "--key",
        &write(d, "client.key", &client_key),
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "SERVING\n"));

    // Another CA: the server's certificate is not trusted.
    let out = health(&["--server", &url, "--ca", &other_pem]);
    assert_eq!(out.code, Some(69), "{out:?}");
    assert_eq!(out.stdout, "");
    let line = one_line(&out);
    assert!(
        line.contains(&format!("TLS handshake with {url} failed")) && line.contains("certificate"),
        "{line}"
    );
    // A client certificate from another CA: the server refuses it.
    let out = health(&[
        "--server",
        &url,
        "--ca",
        &ca_pem,
        "--cert",
        &write(d, "stranger.pem", &stranger_cert),
        "--key",
        &write(d, "stranger.key", &stranger_key),
    ]);
    assert_eq!(out.code, Some(69), "{out:?}");
    assert!(one_line(&out).contains(&url), "{out:?}");
    // Plaintext to a TLS port: no answer, and the address named.
    let plain = format!("http://127.0.0.1:{port}");
    let out = health(&["--server", &plain]);
    assert_eq!(out.code, Some(69), "{out:?}");
    assert!(one_line(&out).contains(&plain), "{out:?}");
}

#[test]
fn health_needs_no_token_where_every_other_call_does() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"orders\"\nsha256 = \"{}\"\nscopes = [\"check\"]\n",
            hash_hex("tok-orders")
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = Server::start_with(
        &dir.path().join("data"),
        port,
        &["--tokens-file", tokens.to_str().unwrap()],
    );
    let url = format!("http://127.0.0.1:{port}");
    // Authentication is on: a check without a token is refused.
    let ctl = Command::new(BIN)
        .args([
            "ctl",
            "--server",
            &url,
            "check",
            "--tenant",
            "t",
            "--subject",
            "u",
        ])
        .args(["--permission", "p:q"])
        .env_remove("RAMPART_TOKEN")
        .output()
        .unwrap();
    assert_eq!(ctl.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&ctl.stderr).contains("UNAUTHENTICATED"));
    // Health answers without one, with the right one, and with a wrong one.
    for token in [None, Some("tok-orders"), Some("tok-not-configured")] {
        let env: Vec<(&str, &str)> = token.map(|t| ("RAMPART_TOKEN", t)).into_iter().collect();
        let out = run(&["--server", &url], &env);
        assert_eq!(out.code, Some(0), "{token:?}: {out:?}");
        assert_eq!(out.stdout, "SERVING\n");
    }
}
