//! Static files, MIME types, caching and CORS, and the binary's CLI contract.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

#[tokio::test]
async fn static_files_have_the_right_mime_types_and_no_caching() {
    let srv = start().await;
    for (path, mime) in [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/pkg/demo_bg.wasm", "application/wasm"),
    ] {
        let (head, body) = http_full(srv.addr, "GET", path, None, &[]).await;
        assert_eq!(head.status, 200, "{path}");
        assert!(
            head.header("content-type").unwrap().starts_with(mime),
            "{path}"
        );
        assert_eq!(head.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            head.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        assert!(!body.is_empty());
    }
    for path in [
        "/missing.js",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/pkg/../../Cargo.toml",
    ] {
        assert_eq!(srv.http("GET", path, None).await.0, 404, "{path}");
    }
}

/// Browser tests call /control from another origin with fetch + JSON, which
/// needs a CORS preflight answer.
#[tokio::test]
async fn cors_preflight_is_answered() {
    let srv = start().await;
    let (head, _) = http_full(
        srv.addr,
        "OPTIONS",
        "/control/close",
        None,
        &[
            ("Origin", "http://127.0.0.1:9999"),
            ("Access-Control-Request-Method", "POST"),
        ],
    )
    .await;
    assert!(head.status == 204 || head.status == 200);
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
    let methods = head.header("access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m));
    }
    assert!(head
        .header("access-control-allow-headers")
        .unwrap()
        .contains("content-type"));
    let (head, _) = http_full(srv.addr, "POST", "/control/clear", Some("{}"), &[]).await;
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
}

/// Scripts parse the one stdout line; a taken port is a one-line error.
#[test]
fn binary_announces_its_port_and_reports_a_taken_port_cleanly() {
    let exe = env!("CARGO_BIN_EXE_devserver");
    let mut child = Command::new(exe)
        .args(["serve", "--port", "0", "--engine", "meter"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn devserver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("devserver listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap();
    let out = Command::new(exe)
        .args(["serve", "--port", &port.to_string()])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let help = Command::new(exe)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--port",
        "--host",
        "--engine",
        "--www",
        "--pkg",
        "--record-dir",
        "--token",
        "--grammar",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}
