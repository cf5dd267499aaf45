//! `devserver relay` is the production relay (the `resilient-relay` crate)
//! under the devserver's name: tokens required unless `--insecure-no-auth`.
//! The relay's own behaviour is tested in relay/tests/.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_devserver");

#[test]
fn relay_without_a_token_secret_refuses_to_start() {
    let out = Command::new(BIN)
        .args(["relay", "--upstream", "ws://127.0.0.1:9"])
        .env_remove("RELAY_JWT_SECRET")
        .env_remove("RELAY_JWT_SECRET_FILE")
        .env_remove("RELAY_INSECURE_NO_AUTH")
        .stdin(Stdio::null())
        .output()
        .expect("run devserver relay");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RELAY_JWT_SECRET") && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

#[test]
fn insecure_relay_starts_answers_health_checks_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "ws://127.0.0.1:9",
            "--insecure-no-auth",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn devserver relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("resilient-relay listening on ws://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut code = None;
    for _ in 0..200 {
        if let Ok(Some(st)) = child.try_wait() {
            code = st.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    if code.is_none() {
        let _ = child.kill();
    }
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(err.contains("client authentication is OFF"), "{err}");
}
