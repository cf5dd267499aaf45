//! The `resilient-relay` binary itself: start-up validation, `mint`, the
//! start-up warning of `--insecure-no-auth`, SIGTERM, and logs that never
//! contain a secret.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_resilient-relay");

fn relay_cmd() -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs to completion (bounded) and returns (exit code, stdout, stderr).
fn run_to_end(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd.spawn().expect("spawn resilient-relay");
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_flag_and_the_value() {
    let mut c = relay_cmd();
    c.args([
        "--upstream",
        "ws://127.0.0.1:9",
        "--audience",
        "a",
        "--max-connections",
        "0",
    ])
    .env("RELAY_JWT_SECRET", SECRET);
    let (code, out, err) = run_to_end(c);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_eq!(
        err.trim(),
        "resilient-relay: --max-connections (RELAY_MAX_CONNECTIONS): must be between 1 and 1000000, got 0"
    );

    // From the environment, and a secret shown only by its length.
    let mut c = relay_cmd();
    c.env("RELAY_UPSTREAM", "wss://api.deepgram.com")
        .env("RELAY_AUDIENCE", "a")
        .env("RELAY_JWT_SECRET", "too-short-secret");
    let (code, _, err) = run_to_end(c);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("RELAY_JWT_SECRET: must be at least 32 bytes, got a secret of 16 bytes"),
        "{err}"
    );
    assert!(!err.contains("too-short-secret"), "{err}");

    // No secret and no --insecure-no-auth: refused, saying what to do.
    let mut c = relay_cmd();
    c.args(["--upstream", "wss://api.deepgram.com"]);
    let (code, _, err) = run_to_end(c);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("RELAY_JWT_SECRET") && err.contains("--insecure-no-auth"),
        "{err}"
    );

    let mut c = relay_cmd();
    c.args([
        "--upstream",
        "wss://x",
        "--insecure-no-auth",
        "--idle-timeout",
        "5 parsecs",
    ]);
    let (code, _, err) = run_to_end(c);
    assert_eq!(code, Some(2), "clap's usage error");
    assert!(
        err.contains("--idle-timeout") && err.contains("5 parsecs"),
        "{err}"
    );
}

#[test]
fn mint_prints_a_token_the_relay_accepts() {
    let mut c = relay_cmd();
    c.args(["mint", "--sub", "user-7", "--aud", AUDIENCE, "--ttl", "2m"])
        .env("RELAY_JWT_SECRET", SECRET);
    let (code, out, err) = run_to_end(c);
    assert_eq!(code, Some(0), "{err}");
    let token = out.trim();
    let v = resilient_relay::auth::TokenVerifier::new(&resilient_relay::JwtConfig {
        secrets: vec![resilient_relay::Secret::new(SECRET)],
        audience: AUDIENCE.into(),
        issuer: None,
        leeway: Duration::ZERO,
    })
    .unwrap();
    let claims = v.verify(token).expect("a valid token");
    assert_eq!(claims.sub, "user-7");
    let ttl = claims.exp - claims.iat.unwrap();
    assert_eq!(ttl, 120);
}

struct Running {
    child: Child,
    addr: String,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts the binary and waits for its one stdout line.
fn spawn_relay(mut cmd: Command) -> Running {
    let mut child = cmd.spawn().expect("spawn resilient-relay");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the relay announces its address");
    let addr = line
        .trim()
        .strip_prefix("resilient-relay listening on ws://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Running {
        child,
        addr,
        stderr,
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill(1)")
        .success();
    assert!(ok);
}

/// Waits (bounded) for the process to exit after SIGTERM.
fn wait_exit(r: &mut Running) -> Option<i32> {
    for _ in 0..400 {
        if let Ok(Some(s)) = r.child.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = r.child.kill();
    panic!("the relay did not exit within 10 s of SIGTERM");
}

/// Tokens, the JWT secret, the provider key and query strings never reach
/// the logs, at debug level, in both formats; SIGTERM drains an open
/// session with 1012 and exits 0.
#[tokio::test]
async fn logs_never_contain_a_secret_and_sigterm_drains_with_1012() {
    let up = upstream().await;
    for format in ["text", "json"] {
        let mut cmd = relay_cmd();
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.url(),
            "--audience",
            AUDIENCE,
            "--log-level",
            "debug",
            "--log-format",
            format,
        ])
        .env("RELAY_JWT_SECRET", SECRET)
        .env("DEEPGRAM_API_KEY", PROVIDER_KEY);
        let mut r = spawn_relay(cmd);
        let base = format!("ws://{}", r.addr);
        let good = token("log-test-subject");
        let expired = token_at("someone", -120, None, AUDIENCE, SECRET);
        let forged = token_at(
            "someone",
            600,
            None,
            AUDIENCE,
            "forged-forged-forged-forged-forged",
        );
        // Refused: forged in the subprotocol, expired in the query.
        let _ = connect(&format!("{base}{DG}"), &["token", &forged], &[])
            .await
            .unwrap_err();
        let _ = connect(
            &format!("{base}{DG}&token={expired}&secretparam=QUERYVALUE"),
            &[],
            &[],
        )
        .await
        .unwrap_err();
        // Accepted with the token in the query: a whole stream.
        let (mut ws, _) = connect(
            &format!("{base}{DG}&token={good}&secretparam=QUERYVALUE"),
            &[],
            &[],
        )
        .await
        .unwrap();
        send_bin(&mut ws, &tone(0.3, 0.5)).await;
        send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
        let (closed, _) = until_close(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(closed.map(|c| c.0), Some(1000));
        // An open session when SIGTERM arrives.
        let (mut open, _) = connect(&format!("{base}{DG}"), &["bearer", &good], &[])
            .await
            .unwrap();
        send_bin(&mut open, &tone(0.1, 0.5)).await;
        up.wait_session(|s| s["http_status"] == 101 && s["ended_at_ms"].is_null())
            .await;
        sigterm(&r.child);
        let (closed, _) = until_close(&mut open, Duration::from_secs(5)).await;
        assert_eq!(closed, Some((1012, "service restart".into())));
        assert_eq!(wait_exit(&mut r), Some(0));
        let log = r.stderr.join().unwrap();
        if std::env::var_os("RELAY_TEST_SHOW_LOG").is_some() {
            eprintln!("{log}");
        }
        for secret in [
            SECRET,
            PROVIDER_KEY,
            &good,
            &expired,
            &forged,
            "QUERYVALUE",
            "token=",
        ] {
            assert!(
                !log.contains(secret),
                "{format} log contains {secret:?}:\n{log}"
            );
        }
        // The log is not empty of what matters.
        for want in [
            "relay started",
            "refused: not authenticated",
            "expired",
            "bad_signature",
            "log-test-subject",
            "draining",
            "relay stopped",
        ] {
            assert!(log.contains(want), "{format} log lacks {want:?}:\n{log}");
        }
    }
}

#[tokio::test]
async fn insecure_no_auth_warns_at_start() {
    let up = upstream().await;
    let mut cmd = relay_cmd();
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.url(),
        "--insecure-no-auth",
    ]);
    let mut r = spawn_relay(cmd);
    // A client without any token is let through.
    let (mut ws, _) = connect(&format!("ws://{}{DG}", r.addr), &[], &[])
        .await
        .unwrap();
    close(&mut ws, 1000, "").await;
    sigterm(&r.child);
    assert_eq!(wait_exit(&mut r), Some(0));
    let log = r.stderr.join().unwrap();
    assert!(
        log.contains("WARN") && log.contains("client authentication is OFF"),
        "{log}"
    );
}
