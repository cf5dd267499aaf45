//! Load benchmark: how many concurrent streaming clients one relay process
//! holds on this machine with p99 added latency under 20 ms.
//!
//! Each client streams 16 kHz PCM16 in 100 ms frames (3200 bytes every
//! 100 ms) to an in-process sink that answers every frame at once with its
//! first 8 bytes, the send time. The round trip is measured twice at each
//! client count: straight to the sink, and through a `resilient-relay`
//! process (release build, client tokens on, one token per client). The
//! added latency is the relay path's percentile minus the direct path's.
//! Client counts ramp until p99 added latency reaches the bound, a frame
//! goes missing, or the time budget is spent.
//!
//! ```sh
//! npm run bench:relay
//! # = cargo build --profile relay -p resilient-relay --bins --examples && target/relay/examples/load
//! target/relay/examples/load --steps 100,200,400 --secs 5 --bound-ms 20
//! ```
//!
//! Everything runs on loopback; every loop is bounded in count and time.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "load-benchmark-secret-0123456789abcdef";
const AUDIENCE: &str = "load";
const FRAME_BYTES: usize = 3200;
const FRAME_EVERY: Duration = Duration::from_millis(100);
/// Samples from the first second of each run are dropped (connect burst).
const WARMUP: Duration = Duration::from_secs(1);
/// The whole ramp stops after this, whatever is left.
const BUDGET: Duration = Duration::from_secs(240);

struct Args {
    steps: Vec<usize>,
    secs: u64,
    bound_ms: f64,
    relay: std::path::PathBuf,
}

fn args() -> Args {
    let exe = std::env::current_exe().expect("own path");
    // target/relay/examples/load → target/relay/resilient-relay
    let default_relay = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("resilient-relay"))
        .expect("target dir");
    let mut a = Args {
        steps: vec![100, 250, 500, 750, 1000, 1250, 1500, 2000, 3000],
        secs: 6,
        bound_ms: 20.0,
        relay: default_relay,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--steps" => {
                a.steps = val()
                    .split(',')
                    .map(|s| s.trim().parse().expect("--steps: numbers"))
                    .collect()
            }
            "--secs" => a.secs = val().parse().expect("--secs: a number"),
            "--bound-ms" => a.bound_ms = val().parse().expect("--bound-ms: a number"),
            "--relay" => a.relay = val().into(),
            other => panic!("unknown option {other} (--steps, --secs, --bound-ms, --relay)"),
        }
    }
    // Each client holds 2 descriptors here (client + sink side).
    assert!(
        a.steps.iter().all(|&n| n <= 8000),
        "at most 8000 clients (descriptor limit)"
    );
    a
}

/// The sink: answers every binary frame with its first 8 bytes.
async fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(m)) = rx.next().await {
                    if let Message::Binary(b) = m {
                        if tx
                            .send(Message::Binary(b.slice(..8.min(b.len()))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

struct RelayProc {
    child: Child,
    addr: String,
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay(path: &std::path::Path, upstream: SocketAddr) -> RelayProc {
    let mut child = Command::new(path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("ws://{upstream}"),
            "--audience",
            AUDIENCE,
            "--max-connections",
            "100000",
            "--log-level",
            "warn",
        ])
        .env("RELAY_JWT_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it: cargo build --profile relay -p resilient-relay)",
                path.display()
            )
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("resilient-relay listening on ws://")
        .unwrap_or_else(|| panic!("unexpected relay output {line:?}"))
        .to_string();
    RelayProc { child, addr }
}

/// utime + stime of a process, in seconds (Linux /proc).
fn cpu_secs(pid: u32) -> f64 {
    let mut s = String::new();
    if std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read_to_string(&mut s))
        .is_err()
    {
        return 0.0;
    }
    let after = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Run {
    rtts_us: Vec<u32>,
    sent: u64,
    received: u64,
    failed_clients: u64,
}

/// N clients stream for `secs` to `url`; round trips after the warm-up.
async fn run(url: &str, n: usize, secs: u64, with_token: bool) -> Run {
    let base = Instant::now();
    let rtts = Arc::new(Mutex::new(Vec::with_capacity(n * secs as usize * 10)));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // Connect in batches so the listen backlogs never overflow.
    let mut sockets = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(50) {
        let conns = batch.iter().map(|&i| {
            let url = url.to_string();
            async move {
                let mut req = url.into_client_request().unwrap();
                if with_token {
                    let t = resilient_relay::auth::mint(
                        SECRET.as_bytes(),
                        &format!("load-{i}"),
                        AUDIENCE,
                        None,
                        Duration::from_secs(600),
                    )
                    .unwrap();
                    req.headers_mut().insert(
                        "sec-websocket-protocol",
                        HeaderValue::from_str(&format!("token, {t}")).unwrap(),
                    );
                }
                tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio_tungstenite::connect_async_with_config(req, None, true),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .map(|(ws, _)| ws)
            }
        });
        for ws in futures_util::future::join_all(conns).await {
            match ws {
                Some(ws) => sockets.push(ws),
                None => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let start = Instant::now() + Duration::from_millis(200);
    let warm = start + WARMUP;
    let stop = start + Duration::from_secs(secs);
    let mut tasks = Vec::with_capacity(n);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (rtts, sent, received, failed) =
            (rtts.clone(), sent.clone(), received.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            // Spread the clients' frames evenly over each 100 ms period.
            let offset = FRAME_EVERY.mul_f64(i as f64 / n as f64);
            let sender = async {
                let mut tick = tokio::time::interval_at((start + offset).into(), FRAME_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut frame = vec![0u8; FRAME_BYTES];
                let mut count = 0u64;
                loop {
                    tick.tick().await;
                    if Instant::now() >= stop {
                        return Some(count);
                    }
                    let t = base.elapsed().as_micros() as u64;
                    frame[..8].copy_from_slice(&t.to_le_bytes());
                    if tx
                        .send(Message::Binary(frame.clone().into()))
                        .await
                        .is_err()
                    {
                        return None;
                    }
                    count += 1;
                }
            };
            let receiver = async {
                let mut mine = Vec::new();
                let mut got = 0u64;
                let grace = stop + Duration::from_secs(1);
                while let Ok(Some(Ok(m))) = tokio::time::timeout_at(grace.into(), rx.next()).await {
                    if let Message::Binary(b) = m {
                        if b.len() >= 8 {
                            let t = u64::from_le_bytes(b[..8].try_into().unwrap());
                            let now = base.elapsed().as_micros() as u64;
                            got += 1;
                            if base + Duration::from_micros(t) >= warm {
                                mine.push(now.saturating_sub(t).min(u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                    if Instant::now() >= grace {
                        break;
                    }
                }
                (mine, got)
            };
            let (count, (mine, got)) = tokio::join!(sender, receiver);
            match count {
                Some(c) => {
                    sent.fetch_add(c, Ordering::Relaxed);
                }
                None => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            received.fetch_add(got, Ordering::Relaxed);
            rtts.lock().unwrap().extend(mine);
            let mut ws = tx.reunite(rx).expect("halves of one socket");
            let _ = ws.close(None).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut v = std::mem::take(&mut *rtts.lock().unwrap());
    v.sort_unstable();
    Run {
        rtts_us: v,
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        failed_clients: failed.load(Ordering::Relaxed),
    }
}

fn pct(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    f64::from(v[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let t0 = Instant::now();
    let sink = sink().await;
    let relay = start_relay(&a.relay, sink);
    let pid = relay.child.id();
    let relay_url = format!("ws://{}/v1/listen", relay.addr);
    let direct_url = format!("ws://{sink}/v1/listen");
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores, load average before the run {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "relay load: 16 kHz PCM16, {FRAME_BYTES}-byte frames every 100 ms per client; {} s per run; \
         added latency = relay round trip - direct round trip (ms); bound p99 < {} ms",
        a.secs, a.bound_ms
    );
    println!(
        "| clients | direct p50 | direct p99 | relay p50 | relay p99 | added p50 | added p99 | relay CPU | relay RSS | generator CPU | frames answered |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut best: Option<usize> = None;
    for &n in &a.steps {
        if t0.elapsed() > BUDGET {
            println!("(time budget of {} s spent; stopping)", BUDGET.as_secs());
            break;
        }
        let direct = run(&direct_url, n, a.secs, false).await;
        let me = std::process::id();
        let cpu0 = (cpu_secs(pid), cpu_secs(me), Instant::now());
        let relayed = run(&relay_url, n, a.secs, true).await;
        let wall = cpu0.2.elapsed().as_secs_f64();
        let cpu = (cpu_secs(pid) - cpu0.0) / wall * 100.0;
        let gen_cpu = (cpu_secs(me) - cpu0.1) / wall * 100.0;
        let rss = rss_mib(pid);
        let (d50, d99) = (pct(&direct.rtts_us, 0.5), pct(&direct.rtts_us, 0.99));
        let (r50, r99) = (pct(&relayed.rtts_us, 0.5), pct(&relayed.rtts_us, 0.99));
        let (add50, add99) = (r50 - d50, r99 - d99);
        let complete = relayed.failed_clients == 0
            && direct.failed_clients == 0
            && relayed.received == relayed.sent
            && relayed.sent > 0;
        println!(
            "| {n} | {d50:.2} | {d99:.2} | {r50:.2} | {r99:.2} | {add50:.2} | {add99:.2} | {cpu:.0}% | {rss:.0} MiB | {gen_cpu:.0}% | {}/{}{} |",
            relayed.received,
            relayed.sent,
            if complete { "" } else { " (incomplete)" }
        );
        if complete && add99 < a.bound_ms {
            best = Some(n);
        } else {
            break;
        }
    }
    match best {
        Some(n) => println!(
            "\nlargest client count with p99 added latency < {} ms: {n} (one relay process, {} cores, loopback; the load generator shares the machine)",
            a.bound_ms,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        None => println!("\nno client count met p99 added latency < {} ms", a.bound_ms),
    }
    drop(relay);
}
