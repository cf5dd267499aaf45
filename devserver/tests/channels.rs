//! Two-channel audio and push-to-talk flushes (issue 14): Deepgram's
//! `multichannel` Results per channel, `Finalize`, the generic `flush` /
//! `flushed` pair and `channel` field, Omi refusing two channels, and
//! two-channel recordings.

mod common;

use std::time::Duration;

use common::*;
use devserver::engine::counter::encode_bytes;
use devserver::engine::pocketsphinx::AVAILABLE;
use serde_json::{json, Value};

const DG2: &str =
    "/v1/listen?encoding=linear16&sample_rate=16000&channels=2&multichannel=true&engine=counter";
const GEN2: &str = "/v1/stream?encoding=linear16&sample_rate=16000&channels=2&engine=counter";

/// Interleaves two mono PCM16 byte streams of equal length into stereo
/// frames (channel 0 sample, channel 1 sample).
fn interleave(ch0: &[u8], ch1: &[u8]) -> Vec<u8> {
    assert_eq!(ch0.len(), ch1.len());
    ch0.chunks_exact(2)
        .zip(ch1.chunks_exact(2))
        .flat_map(|(a, b)| [a[0], a[1], b[0], b[1]])
        .collect()
}

/// Self-describing stereo for frames `[from, to)`: channel 0 spells
/// positions from `from`, channel 1 from `from + 1_000_000`, so each
/// channel's counter transcripts name different positions.
fn stereo_counter(from: u64, to: u64) -> Vec<u8> {
    interleave(
        &encode_bytes(from, to),
        &encode_bytes(1_000_000 + from, 1_000_000 + to),
    )
}

/// Sends stereo PCM16 in 100 ms chunks (6 400 bytes at 16 kHz).
async fn send_stereo(ws: &mut Ws, pcm: &[u8]) {
    for c in pcm.chunks(6_400) {
        send_bin(ws, c).await;
    }
}

/// The Results of channel `c` of 2.
fn of_channel(msgs: &[Value], c: u64) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["type"] == "Results" && m["channel_index"] == json!([c, 2]))
        .cloned()
        .collect()
}

/// (transcript, start µs, end µs, from_finalize) of the finals.
fn finals(msgs: &[Value]) -> Vec<(String, i64, i64, bool)> {
    msgs.iter()
        .filter(|m| m["type"] == "Results" && m["is_final"] == true)
        .map(|m| {
            let s = us(&m["start"]);
            (
                transcript(m).to_string(),
                s,
                s + us(&m["duration"]),
                m["from_finalize"] == true,
            )
        })
        .collect()
}

fn s(t: &str) -> String {
    t.to_string()
}

/// `channels=2&multichannel=true`: a recogniser per channel, each
/// channel's Results marked `[c, 2]` and tiling that channel in frames /
/// sample_rate (1.5 s here: 3 s if samples were counted), each naming its
/// own channel's positions.
#[tokio::test]
async fn deepgram_multichannel_gives_results_per_channel_in_frames() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(DG2)).await;
    send_stereo(&mut ws, &stereo_counter(0, 24_000)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1000, String::new())), "{msgs:#?}");
    let results: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "Results").collect();
    assert!(
        results
            .iter()
            .all(|m| m["channel_index"] == json!([0, 2]) || m["channel_index"] == json!([1, 2])),
        "{results:#?}"
    );
    let (ch0, ch1) = (of_channel(&msgs, 0), of_channel(&msgs, 1));
    assert_finals_tile(&ch0, 24_000, 16_000);
    assert_finals_tile(&ch1, 24_000, 16_000);
    assert_eq!(
        finals(&ch0),
        vec![
            (s("pos 0-16000"), 0, 1_000_000, false),
            (s("pos 16000-24000"), 1_000_000, 1_500_000, true),
        ]
    );
    assert_eq!(
        finals(&ch1),
        vec![
            (s("pos 1000000-1016000"), 0, 1_000_000, false),
            (s("pos 1016000-1024000"), 1_000_000, 1_500_000, true),
        ]
    );
    // Word times are in the same frame clock.
    let last_word = ch1.last().unwrap()["channel"]["alternatives"][0]["words"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(us(&last_word["end"]), 1_500_000, "{last_word}");
    let meta = msgs.last().unwrap();
    assert_eq!(meta["type"], "Metadata");
    assert_eq!(meta["channels"], 2);
    assert_eq!(us(&meta["duration"]), 1_500_000, "{meta}");
}

/// The fixtures through pocketsphinx (the meter without it), one channel
/// speaking, the other silent, each way round: the words are on the
/// speaking channel only, and both channels' finals tile the fixture's
/// frames.
#[tokio::test]
async fn deepgram_multichannel_transcribes_a_fixture_on_its_own_channel() {
    let srv = start().await;
    let wav = fixture("hello-16k.wav");
    assert_eq!((wav.sample_rate, wav.channels), (16_000, 1));
    let frames = (wav.pcm.len() / 2) as u64;
    let silence = vec![0u8; wav.pcm.len()];
    let (engine, grammar) = if AVAILABLE {
        ("pocketsphinx", "&grammar=hello")
    } else {
        ("meter", "")
    };
    for speaking in [0u64, 1] {
        let pcm = if speaking == 0 {
            interleave(&wav.pcm, &silence)
        } else {
            interleave(&silence, &wav.pcm)
        };
        let url = format!(
            "/v1/listen?encoding=linear16&sample_rate=16000&channels=2&multichannel=true&engine={engine}{grammar}"
        );
        let mut ws = connect_ok(&srv.ws_url(&url)).await;
        send_stereo(&mut ws, &pcm).await;
        send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
        let (close, msgs) = until_close(&mut ws, Duration::from_secs(30)).await;
        assert_eq!(close, Some((1000, String::new())));
        let words: Vec<String> = finals(&of_channel(&msgs, speaking))
            .into_iter()
            .map(|f| f.0)
            .filter(|t| !t.is_empty())
            .collect();
        let text = words.join(" ");
        if AVAILABLE {
            assert!(text.contains("world"), "channel {speaking}: {text:?}");
        } else {
            assert!(
                text.contains("[meter] speech"),
                "channel {speaking}: {text:?}"
            );
        }
        let quiet = of_channel(&msgs, 1 - speaking);
        assert!(
            quiet.iter().all(|m| transcript(m).is_empty()),
            "the silent channel {} has no words: {quiet:#?}",
            1 - speaking
        );
        assert_finals_tile(&of_channel(&msgs, speaking), frames, 16_000);
        assert_finals_tile(&quiet, frames, 16_000);
    }
}

/// `channels=2` without `multichannel`: Deepgram transcribes the mix,
/// `channel_index` `[0, 1]`. Channels `v - d` and `v + d` mix to the
/// counter's `v`, which neither channel is alone.
#[tokio::test]
async fn deepgram_two_channels_without_multichannel_transcribe_the_mix() {
    let srv = start().await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..20_000 {
        let v = devserver::engine::counter::encode(i);
        let d = 100.min(i16::MAX - v.abs());
        a.extend((v - d).to_le_bytes());
        b.extend((v + d).to_le_bytes());
    }
    let url = "/v1/listen?encoding=linear16&sample_rate=16000&channels=2&engine=counter";
    let mut ws = connect_ok(&srv.ws_url(url)).await;
    send_stereo(&mut ws, &interleave(&a, &b)).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let (_, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert!(msgs
        .iter()
        .filter(|m| m["type"] == "Results")
        .all(|m| m["channel_index"] == json!([0, 1])));
    assert_finals_tile(&msgs, 20_000, 16_000);
    assert_eq!(
        finals(&msgs),
        vec![
            (s("pos 0-16000"), 0, 1_000_000, false),
            (s("pos 16000-20000"), 1_000_000, 1_250_000, true),
        ]
    );
}

/// The devserver transcribes one or two channels; anything else, and a
/// `multichannel` that is not a boolean, is refused before the upgrade.
#[tokio::test]
async fn deepgram_refuses_other_channel_counts_with_a_400() {
    let srv = start().await;
    for q in [
        "channels=3&multichannel=true",
        "channels=0",
        "channels=two",
        "channels=2&multichannel=yes",
    ] {
        let url = srv.ws_url(&format!("/v1/listen?encoding=linear16&{q}"));
        match connect(&url, &[], &[]).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 400, "{q}");
                let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
                let field = if q.contains("yes") {
                    "multichannel"
                } else {
                    "channels"
                };
                assert!(body.contains(field), "{q}: {body}");
            }
            other => panic!("{q}: expected 400, got {:?}", other.map(|_| ())),
        }
    }
    connect_ok(&srv.ws_url("/v1/listen?channels=2&multichannel=true")).await;
}

/// Reads Results until each of `channels` has sent a `from_finalize`
/// final; returns everything read.
async fn until_finalized(ws: &mut Ws, channels: u64) -> Vec<Value> {
    let mut msgs = Vec::new();
    let mut done = vec![false; channels as usize];
    while done.contains(&false) {
        let m = next_json(ws).await;
        assert_eq!(m["type"], "Results", "{m}");
        if m["from_finalize"] == true {
            assert_eq!(m["is_final"], true, "{m}");
            done[m["channel_index"][0].as_u64().unwrap() as usize] = true;
        }
        msgs.push(m);
    }
    msgs
}

/// Push-to-talk on Deepgram: `Finalize` gives `from_finalize` finals for
/// everything received, on each channel, and the socket stays open for
/// more audio and more Finalizes; one with nothing new still confirms the
/// end with an empty, zero-length final.
#[tokio::test]
async fn finalize_finalizes_each_channel_and_the_stream_goes_on() {
    let srv = start().await;
    let mut ws = connect_ok(&srv.ws_url(DG2)).await;
    send_stereo(&mut ws, &stereo_counter(0, 8_000)).await;
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    let first = until_finalized(&mut ws, 2).await;
    assert_eq!(
        finals(&of_channel(&first, 0)),
        vec![(s("pos 0-8000"), 0, 500_000, true)]
    );
    assert_eq!(
        finals(&of_channel(&first, 1)),
        vec![(s("pos 1000000-1008000"), 0, 500_000, true)]
    );
    // Still open: more audio is transcribed from where the finals ended.
    send_stereo(&mut ws, &stereo_counter(8_000, 12_800)).await;
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    let second = until_finalized(&mut ws, 2).await;
    assert_eq!(
        finals(&of_channel(&second, 0)),
        vec![(s("pos 8000-12800"), 500_000, 800_000, true)]
    );
    assert_eq!(
        finals(&of_channel(&second, 1)),
        vec![(s("pos 1008000-1012800"), 500_000, 800_000, true)]
    );
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    let third = until_finalized(&mut ws, 2).await;
    for c in [0, 1] {
        assert_eq!(
            finals(&of_channel(&third, c)),
            vec![(s(""), 800_000, 800_000, true)]
        );
    }
    let live = srv.wait_session(|s| s["finalize_count"] == 3).await;
    assert!(live["ended_at_ms"].is_null(), "Finalize must not close");
    let all: Vec<Value> = [first, second, third].concat();
    assert_finals_tile(&of_channel(&all, 0), 12_800, 16_000);
    assert_finals_tile(&of_channel(&all, 1), 12_800, 16_000);
    let msgs = stream_and_close(&mut ws, &[], 16_000, Duration::from_secs(5)).await;
    assert_eq!(msgs.last().unwrap()["type"], "Metadata");
}

/// A Finalize over silence still answers with a final: empty, but with
/// the start and duration of the audio, so a client can confirm it.
#[tokio::test]
async fn finalize_over_silence_gives_an_empty_final_covering_it() {
    let srv = start().await;
    let q = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1";
    let mut ws = connect_ok(&srv.ws_url(q)).await;
    send_bin(&mut ws, &tone(0.3, 0.0, 16_000)).await;
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    let first = until_finalized(&mut ws, 1).await;
    assert_eq!(finals(&first), vec![(s(""), 0, 300_000, true)]);
    assert_eq!(first.last().unwrap()["channel_index"], json!([0, 1]));
    send_bin(&mut ws, &tone(0.5, 0.5, 16_000)).await;
    send_text(&mut ws, r#"{"type":"Finalize"}"#).await;
    let second = until_finalized(&mut ws, 1).await;
    let f = finals(&second);
    assert_eq!(f.len(), 1, "{second:#?}");
    assert!(f[0].0.starts_with("[meter] speech 0.5s"), "{f:?}");
    assert_eq!((f[0].1, f[0].2, f[0].3), (300_000, 800_000, true));
}

/// Opens a generic stream `id` at offset 0.
async fn generic_started(srv: &TestServer, url: &str, id: &str) -> Ws {
    let mut ws = connect_ok(&srv.ws_url(url)).await;
    send_text(
        &mut ws,
        &json!({"type": "start", "stream": id, "offset": 0}).to_string(),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "started", "stream": id, "offset": 0})
    );
    ws
}

/// Reads until `flushed`, returning the final transcripts before it as
/// (channel, text, start, end) and the flushed offset.
async fn until_flushed(ws: &mut Ws) -> (Vec<(u64, String, f64, f64)>, u64) {
    let mut out = Vec::new();
    loop {
        let m = next_json(ws).await;
        match m["type"].as_str() {
            Some("flushed") => return (out, m["offset"].as_u64().unwrap()),
            Some("transcript") if m["is_final"] == true => out.push((
                m["channel"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
                m["start"].as_f64().unwrap(),
                m["end"].as_f64().unwrap(),
            )),
            Some("transcript" | "ack") => {}
            _ => panic!("unexpected {m}"),
        }
    }
}

/// Push-to-talk on the generic protocol: `flush` sends the finals of
/// everything stored, per channel, in stream time, then `flushed` with
/// the high-water mark; the stream goes on, and `finish` still ends it.
#[tokio::test]
async fn generic_flush_sends_finals_per_channel_then_flushed() {
    let srv = start().await;
    let mut ws = generic_started(&srv, GEN2, "ptt-1").await;
    send_text(&mut ws, r#"{"type":"flush"}"#).await;
    assert_eq!(
        until_flushed(&mut ws).await,
        (vec![], 0),
        "nothing stored yet"
    );
    send_stereo(&mut ws, &stereo_counter(0, 12_000)).await;
    send_text(&mut ws, r#"{"type":"flush"}"#).await;
    let (mut got, offset) = until_flushed(&mut ws).await;
    got.sort_by_key(|t| t.0);
    assert_eq!(offset, 48_000, "12 000 stereo frames");
    assert_eq!(
        got,
        vec![
            (0, s("pos 0-12000"), 0.0, 0.75),
            (1, s("pos 1000000-1012000"), 0.0, 0.75),
        ]
    );
    send_stereo(&mut ws, &stereo_counter(12_000, 20_000)).await;
    send_text(&mut ws, r#"{"type":"flush"}"#).await;
    let (mut got, offset) = until_flushed(&mut ws).await;
    got.sort_by_key(|t| t.0);
    assert_eq!(offset, 80_000);
    assert_eq!(
        got,
        vec![
            (0, s("pos 12000-20000"), 0.75, 1.25),
            (1, s("pos 1012000-1020000"), 0.75, 1.25),
        ]
    );
    let live = srv.wait_session(|s| s["stream"] == "ptt-1").await;
    assert!(live["ended_at_ms"].is_null(), "flush must not close");
    assert_eq!(live["invalid_messages"], 0, "flush is a known message");
    send_text(&mut ws, r#"{"type":"finish"}"#).await;
    let (close, msgs) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1000, "finished".into())), "{msgs:?}");
    assert_eq!(
        msgs.last().unwrap(),
        &json!({"type": "finished", "offset": 80_000})
    );
}

/// Omi transcribes one channel: a connection asking for two is refused
/// before the upgrade, and the answer says why.
#[tokio::test]
async fn omi_refuses_two_channels() {
    let srv = start().await;
    let url = srv.ws_url("/v4/web/listen?sample_rate=16000&codec=pcm16&channels=2");
    match connect(&url, &[], &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 400);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
            assert!(body.contains("channels"), "{body}");
        }
        other => panic!("expected 400, got {:?}", other.map(|_| ())),
    }
    let s = srv.wait_session(|s| s["endpoint"] == "omi").await;
    assert_eq!(
        (s["http_status"].as_u64(), s["channels"].as_u64()),
        (Some(400), Some(2))
    );
    connect_ok(&srv.ws_url("/v4/web/listen?sample_rate=16000&codec=pcm16&channels=1")).await;
}

/// A two-channel session is recorded as a two-channel WAV, interleaved,
/// with every frame sent, in memory and in `--record-dir`; a generic
/// stream's audio too.
#[tokio::test]
async fn two_channel_sessions_are_recorded_as_two_channel_wavs() {
    let dir = std::env::temp_dir().join(format!("devserver-rec2ch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.clone();
    let srv = start_with(move |c| c.record_dir = Some(d)).await;
    let pcm = stereo_counter(0, 7_000);
    let mut ws = connect_ok(&srv.ws_url(DG2)).await;
    send_stereo(&mut ws, &pcm).await;
    close(&mut ws, 1000, "").await;
    let sess = srv
        .wait_session(|s| s["endpoint"] == "deepgram" && !s["ended_at_ms"].is_null())
        .await;
    let id = sess["id"].as_str().unwrap();
    let (status, wav) = srv
        .http("GET", &format!("/control/sessions/{id}/audio"), None)
        .await;
    assert_eq!(status, 200);
    let check = |bytes: &[u8], what: &str| {
        assert_eq!(
            &bytes[22..24],
            &2u16.to_le_bytes(),
            "{what}: header channels"
        );
        assert_eq!(
            &bytes[28..32],
            &64_000u32.to_le_bytes(),
            "{what}: byte rate"
        );
        assert_eq!(&bytes[32..34], &4u16.to_le_bytes(), "{what}: block align");
        let w = devserver::wav::parse_wav(bytes).unwrap();
        assert_eq!((w.sample_rate, w.channels), (16_000, 2), "{what}");
        assert_eq!(w.pcm.len() / 4, 7_000, "{what}: frames");
        assert_eq!(w.pcm, pcm, "{what}: interleaved as sent");
    };
    check(&wav, "session audio");
    // The session is marked ended before its file is written: wait for
    // the whole file (header and every frame), then check it.
    let path = dir.join(format!("{id}.wav"));
    let mut file = Vec::new();
    for _ in 0..100 {
        file = std::fs::read(&path).unwrap_or_default();
        if file.len() >= 44 + pcm.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(file.len(), 44 + pcm.len(), "{}", path.display());
    let _ = std::fs::remove_dir_all(&dir);
    check(&file, "record-dir file");

    let mut ws = generic_started(&srv, GEN2, "rec-2ch").await;
    send_stereo(&mut ws, &pcm).await;
    send_text(&mut ws, r#"{"type":"finish"}"#).await;
    let (close, _) = until_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(close, Some((1000, "finished".into())));
    let (status, wav) = srv
        .http("GET", "/control/streams/rec-2ch/audio", None)
        .await;
    assert_eq!(status, 200);
    check(&wav, "generic stream audio");
}
