//! The `pocketsphinx` engine: real offline recognition through the system
//! libpocketsphinx (Debian's 0.8+5prealpha), with a small FFI of our own.
//!
//! The crates.io bindings declare older C signatures than this library has,
//! are not `Send` and cannot silence logging, hence the ~100 lines here.
//! Loading a decoder costs ~0.35 s and ~93 MB, and browser tests open
//! hundreds of short connections, so idle decoders go back to a small pool
//! (one pool per grammar) instead of being freed.
//!
//! The utterance times reported here (back-dated starts, 5 s cuts) are
//! advice: the engine worker moves them so finals tile the stream
//! (`engine::Worker`).

use std::sync::Arc;

use super::Recognizer;

/// Whether this build links libpocketsphinx.
pub const AVAILABLE: bool = cfg!(has_pocketsphinx);

/// Why `pocketsphinx` cannot be picked in a build without it.
pub const UNAVAILABLE: &str = "engine pocketsphinx is unavailable: devserver was built without \
     libpocketsphinx (install libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us pkg-config \
     and rebuild)";

/// A built-in JSGF grammar over the phrases of the test fixtures
/// (`tests/fixtures/hello.txt` and `speech-a.txt`), any number of them in
/// any order. The espeak voices of the fixtures are recognised poorly with
/// the full language model ("the ah world it did not do"), and a plain word
/// loop over the same words still hears "this is" as "is is"; phrases make
/// the words testable. It is a test aid for the plumbing, not a model of
/// English.
pub const HELLO_GRAMMAR: &str = "#JSGF V1.0;\ngrammar hello;\n\
public <utterance> = <phrase>+;\n\
<phrase> = hello world | this is a test | of live transcription | the connection may drop \
| at any moment | but no audio should be lost | we buffer every chunk | while the network is down \
| and replay it | when the socket opens again;\n";

/// Resolves a `grammar=` query value to grammar text.
pub fn builtin_grammar(name: &str) -> Option<&'static str> {
    match name {
        "hello" | "fixtures" => Some(HELLO_GRAMMAR),
        _ => None,
    }
}

#[cfg(not(has_pocketsphinx))]
pub fn recognizer(_grammar: Option<Arc<str>>) -> Result<Box<dyn Recognizer>, String> {
    Err(UNAVAILABLE.into())
}

#[cfg(has_pocketsphinx)]
pub fn recognizer(grammar: Option<Arc<str>>) -> Result<Box<dyn Recognizer>, String> {
    let decoder = imp::Decoder::take(grammar)?;
    Ok(Box::new(imp::Sphinx::new(decoder)))
}

#[cfg(has_pocketsphinx)]
mod imp {
    use std::ffi::{c_char, c_int, c_void, CStr, CString};
    use std::sync::{Arc, Mutex, Once};

    use crate::engine::{RecEvent, Recognizer, Transcript};
    use crate::util::lock;

    extern "C" {
        fn ps_args() -> *const c_void;
        fn cmd_ln_parse_r(
            inout: *mut c_void,
            defn: *const c_void,
            argc: i32,
            argv: *mut *mut c_char,
            strict: i32,
        ) -> *mut c_void;
        fn cmd_ln_free_r(config: *mut c_void) -> c_int;
        fn ps_init(config: *mut c_void) -> *mut c_void;
        fn ps_free(ps: *mut c_void) -> c_int;
        fn ps_start_utt(ps: *mut c_void) -> c_int;
        fn ps_process_raw(
            ps: *mut c_void,
            data: *const i16,
            n_samples: usize,
            no_search: c_int,
            full_utt: c_int,
        ) -> c_int;
        fn ps_end_utt(ps: *mut c_void) -> c_int;
        fn ps_get_hyp(ps: *mut c_void, out_best_score: *mut i32) -> *const c_char;
        fn ps_get_in_speech(ps: *mut c_void) -> u8;
        fn ps_set_jsgf_string(ps: *mut c_void, name: *const c_char, jsgf: *const c_char) -> c_int;
        fn ps_set_search(ps: *mut c_void, name: *const c_char) -> c_int;
        fn err_set_logfp(stream: *mut c_void);
    }

    /// Idle decoders kept for reuse, per grammar.
    const MAX_IDLE: usize = 4;
    static POOL: Mutex<Vec<(Option<Arc<str>>, Decoder)>> = Mutex::new(Vec::new());
    static SILENCE_LOGS: Once = Once::new();

    fn model_dir() -> String {
        std::env::var("POCKETSPHINX_MODEL_DIR")
            .unwrap_or_else(|_| format!("{}/en-us", env!("DEVSERVER_PS_MODELDIR")))
    }

    /// An owned `ps_decoder_t`.
    pub struct Decoder {
        ps: *mut c_void,
        grammar: Option<Arc<str>>,
    }

    // SAFETY: a pocketsphinx decoder has no thread affinity; it must only not
    // be used from two threads at once, which `&mut self` access guarantees.
    unsafe impl Send for Decoder {}

    impl Decoder {
        /// A decoder for `grammar` from the pool, or a freshly loaded one.
        pub fn take(grammar: Option<Arc<str>>) -> Result<Decoder, String> {
            {
                let mut pool = lock(&POOL);
                if let Some(i) = pool.iter().position(|(g, _)| *g == grammar) {
                    return Ok(pool.swap_remove(i).1);
                }
            }
            Decoder::load(grammar)
        }

        fn load(grammar: Option<Arc<str>>) -> Result<Decoder, String> {
            // SAFETY: passing NULL disables sphinxbase logging process-wide;
            // done once, before any decoder exists.
            SILENCE_LOGS.call_once(|| unsafe { err_set_logfp(std::ptr::null_mut()) });
            let dir = model_dir();
            let args = [
                "-hmm".to_string(),
                format!("{dir}/en-us"),
                "-lm".into(),
                format!("{dir}/en-us.lm.bin"),
                "-dict".into(),
                format!("{dir}/cmudict-en-us.dict"),
                // Cuts end_utt from ~1 s to ~7 ms at similar accuracy.
                "-fwdflat".into(),
                "no".into(),
                "-bestpath".into(),
                "no".into(),
            ];
            let cargs: Vec<CString> = args
                .iter()
                .map(|a| CString::new(a.as_str()).expect("no NUL in args"))
                .collect();
            let mut argv: Vec<*mut c_char> =
                cargs.iter().map(|c| c.as_ptr() as *mut c_char).collect();
            // SAFETY: argv holds argc valid C strings that outlive the call;
            // cmd_ln_parse_r copies what it keeps.
            let config = unsafe {
                cmd_ln_parse_r(
                    std::ptr::null_mut(),
                    ps_args(),
                    argv.len() as i32,
                    argv.as_mut_ptr(),
                    1,
                )
            };
            if config.is_null() {
                return Err(format!("pocketsphinx: bad configuration (model dir {dir})"));
            }
            // SAFETY: config is valid; ps_init retains its own reference, so
            // ours is released right after.
            let ps = unsafe {
                let ps = ps_init(config);
                cmd_ln_free_r(config);
                ps
            };
            if ps.is_null() {
                return Err(format!("pocketsphinx: cannot load the model from {dir}"));
            }
            let mut d = Decoder { ps, grammar: None };
            if let Some(g) = &grammar {
                let name = CString::new("grammar").expect("no NUL");
                let text =
                    CString::new(g.as_bytes()).map_err(|_| "grammar contains NUL".to_string())?;
                // SAFETY: ps is a live decoder; both strings are valid.
                let ok = unsafe {
                    ps_set_jsgf_string(d.ps, name.as_ptr(), text.as_ptr()) == 0
                        && ps_set_search(d.ps, name.as_ptr()) == 0
                };
                if !ok {
                    return Err("pocketsphinx: invalid JSGF grammar".into());
                }
            }
            d.grammar = grammar;
            Ok(d)
        }

        fn start(&mut self) {
            // SAFETY: self.ps is a live decoder (freed only in Drop).
            unsafe { ps_start_utt(self.ps) };
        }

        fn process(&mut self, samples: &[i16]) {
            // SAFETY: the slice is valid for samples.len() i16s.
            unsafe { ps_process_raw(self.ps, samples.as_ptr(), samples.len(), 0, 0) };
        }

        fn in_speech(&mut self) -> bool {
            // SAFETY: live decoder.
            unsafe { ps_get_in_speech(self.ps) != 0 }
        }

        fn hyp(&mut self) -> String {
            let mut score = 0i32;
            // SAFETY: live decoder; the returned string is owned by the
            // decoder and copied before the next call.
            unsafe {
                let p = ps_get_hyp(self.ps, &mut score);
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().trim().to_string()
                }
            }
        }

        fn end(&mut self) {
            // SAFETY: live decoder.
            unsafe { ps_end_utt(self.ps) };
        }

        /// Returns the decoder to the pool (or frees it when the pool is full).
        fn recycle(self) {
            let mut pool = lock(&POOL);
            if pool.len() < MAX_IDLE {
                pool.push((self.grammar.clone(), self));
            }
        }
    }

    impl Drop for Decoder {
        fn drop(&mut self) {
            // SAFETY: ps came from ps_init and is freed exactly once.
            unsafe { ps_free(self.ps) };
        }
    }

    /// Utterances longer than this are cut: espeak's pauses are too short
    /// for pocketsphinx to end an utterance on its own.
    const MAX_UTT_SECS: f64 = 5.0;
    /// Samples per ps_process_raw call (100 ms at 16 kHz).
    const CHUNK: usize = 1600;
    const RATE: f64 = 16_000.0;

    pub struct Sphinx {
        dec: Option<Decoder>,
        buf: Vec<i16>,
        /// Samples processed so far.
        pos: u64,
        /// Where the current utterance's speech began, when in speech.
        utt_start: Option<u64>,
        was_in_speech: bool,
        /// SpeechStarted was reported and in-speech has not gone false since
        /// (an utterance cut by the cap goes on without a new one).
        speech_reported: bool,
        last_partial: String,
    }

    impl Sphinx {
        pub fn new(mut dec: Decoder) -> Sphinx {
            dec.start();
            Sphinx {
                dec: Some(dec),
                buf: Vec::with_capacity(CHUNK),
                pos: 0,
                utt_start: None,
                was_in_speech: false,
                speech_reported: false,
                last_partial: String::new(),
            }
        }

        fn dec(&mut self) -> &mut Decoder {
            self.dec.as_mut().expect("decoder is present until drop")
        }

        fn process_chunk(&mut self, out: &mut Vec<RecEvent>) {
            let chunk = std::mem::take(&mut self.buf);
            self.dec().process(&chunk);
            let chunk_start = self.pos;
            self.pos += chunk.len() as u64;
            let in_speech = self.dec().in_speech();
            if in_speech && self.utt_start.is_none() {
                let start = if self.speech_reported {
                    // Speech goes on after an utterance cut by the cap: the
                    // next utterance starts right where the cut was.
                    chunk_start
                } else {
                    // pocketsphinx detects speech with some delay; back-date
                    // it. The worker clamps this to the last final's end, so
                    // the back-dating never overlaps a final.
                    self.pos.saturating_sub(chunk.len() as u64 * 3)
                };
                self.utt_start = Some(start);
            }
            if in_speech && !self.speech_reported {
                self.speech_reported = true;
                let at = self.utt_start.unwrap_or(chunk_start) as f64 / RATE;
                out.push(RecEvent::SpeechStarted(at));
            }
            let too_long = self
                .utt_start
                .is_some_and(|s| (self.pos - s) as f64 / RATE >= MAX_UTT_SECS);
            if (self.was_in_speech && !in_speech) || too_long {
                self.end_utterance(out, !in_speech);
            } else if in_speech {
                let hyp = self.dec().hyp();
                if !hyp.is_empty() && hyp != self.last_partial {
                    let start = self.utt_start.unwrap_or(self.pos) as f64 / RATE;
                    out.push(RecEvent::Transcript(Transcript::new(
                        hyp.clone(),
                        start,
                        self.pos as f64 / RATE,
                        false,
                        0.5,
                    )));
                    self.last_partial = hyp;
                }
            }
            self.was_in_speech = in_speech && !too_long;
            if !in_speech {
                self.speech_reported = false;
            }
            self.buf = chunk;
            self.buf.clear();
        }

        fn end_utterance(&mut self, out: &mut Vec<RecEvent>, speech_final: bool) {
            self.dec().end();
            let mut hyp = self.dec().hyp();
            self.dec().start();
            if hyp.is_empty() {
                // A grammar search cut mid-phrase (the 5 s cap) reaches no
                // final state and has no hypothesis; the last partial is
                // still the best account of what was said.
                hyp = std::mem::take(&mut self.last_partial);
            }
            let start = self.utt_start.take().unwrap_or(self.pos) as f64 / RATE;
            self.last_partial.clear();
            self.was_in_speech = false;
            if !hyp.is_empty() {
                let mut t = Transcript::new(hyp, start, self.pos as f64 / RATE, true, 0.8);
                t.speech_final = speech_final;
                out.push(RecEvent::Transcript(t));
            }
        }
    }

    impl Recognizer for Sphinx {
        fn sample_rate(&self) -> u32 {
            16_000
        }

        fn feed(&mut self, samples: &[i16], out: &mut Vec<RecEvent>) {
            for s in samples.chunks(CHUNK) {
                let room = CHUNK - self.buf.len();
                let (now, later) = s.split_at(s.len().min(room));
                self.buf.extend_from_slice(now);
                if self.buf.len() == CHUNK {
                    self.process_chunk(out);
                }
                self.buf.extend_from_slice(later);
                if self.buf.len() == CHUNK {
                    self.process_chunk(out);
                }
            }
        }

        fn flush(&mut self, out: &mut Vec<RecEvent>) {
            if !self.buf.is_empty() {
                let chunk = std::mem::take(&mut self.buf);
                self.dec().process(&chunk);
                self.pos += chunk.len() as u64;
            }
            if self.utt_start.is_none() && !self.dec().hyp().is_empty() {
                self.utt_start = Some(0);
            }
            self.end_utterance(out, false);
            self.speech_reported = false;
        }

        fn in_utterance(&self) -> bool {
            self.utt_start.is_some()
        }
    }

    impl Drop for Sphinx {
        fn drop(&mut self) {
            if let Some(mut dec) = self.dec.take() {
                // Leave the decoder between utterances for its next user.
                dec.end();
                dec.recycle();
            }
        }
    }
}
