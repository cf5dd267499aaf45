//! The pocketsphinx engine on the speech fixture.
//!
//! Uses grammar mode (`grammar=hello`, a word loop over the fixture words):
//! the espeak voice of the fixtures is recognised poorly by the full
//! language model, and this test is about the plumbing (streaming, partials,
//! finals, decoder reuse), not about the model.

mod common;

use std::time::Duration;

use common::*;
use devserver::engine::pocketsphinx::AVAILABLE;
use devserver::EngineKind;
use serde_json::Value;

async fn transcribe(srv: &TestServer, name: &str) -> (String, Vec<Value>) {
    let wav = fixture(name);
    assert_eq!(wav.sample_rate, 16_000);
    let url = srv
        .ws_url("/v1/listen?encoding=linear16&sample_rate=16000&engine=pocketsphinx&grammar=hello");
    let mut ws = connect_ok(&url).await;
    // 100 ms chunks, as the browser client sends them.
    let msgs = stream_and_close(&mut ws, &wav.pcm, 16_000, Duration::from_secs(30)).await;
    // Finals tile the fixture from 0 (pocketsphinx's back-dated utterance
    // starts used to leave 0-0.4 s uncovered) to its last sample.
    assert_finals_tile(&msgs, (wav.pcm.len() / 2) as u64, 16_000);
    let finals: Vec<String> = msgs
        .iter()
        .filter(|m| m["type"] == "Results" && m["is_final"] == true)
        .map(|m| transcript(m).to_string())
        .filter(|t| !t.is_empty())
        .collect();
    (finals.join(" "), msgs)
}

#[tokio::test]
async fn hello_fixture_is_transcribed_with_the_fixture_grammar() {
    if !AVAILABLE {
        // Built without libpocketsphinx: the engine must refuse clearly.
        let err = EngineKind::parse("pocketsphinx").unwrap_err();
        assert!(err.contains("unavailable"), "{err}");
        return;
    }
    let srv = start().await;
    let (text, msgs) = transcribe(&srv, "hello-16k.wav").await;
    assert!(text.contains("world"), "final transcript {text:?}");
    assert!(text.contains("this is"), "final transcript {text:?}");
    assert!(
        msgs.iter().any(|m| m["is_final"] == false),
        "partials become interim results"
    );
    // A second connection reuses a pooled decoder and does as well.
    let (again, _) = transcribe(&srv, "hello-16k.wav").await;
    assert!(again.contains("world"), "second run {again:?}");
    let s = srv
        .wait_session(|s| s["engine"] == "pocketsphinx" && !s["ended_at_ms"].is_null())
        .await;
    assert!(s["transcripts_sent"].as_u64().unwrap() >= 2);
}

/// The 15 s passage is longer than the 5 s utterance cap, so it is cut
/// mid-phrase, where a grammar search has no complete parse: the words of
/// the cut utterances must still come out as finals, not vanish.
#[tokio::test]
async fn long_speech_cut_by_the_utterance_cap_loses_no_utterance() {
    if !AVAILABLE {
        assert!(EngineKind::parse("pocketsphinx").is_err());
        return;
    }
    let srv = start().await;
    let (text, _) = transcribe(&srv, "speech-a-16k.wav").await;
    for phrase in ["hello world", "no audio should be lost", "replay it"] {
        assert!(text.contains(phrase), "{phrase:?} missing from {text:?}");
    }
}
