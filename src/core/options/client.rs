//! `new TranscriptionClient(options)`.

use super::*;

/// `new TranscriptionClient(options)`: every option checked, then the
/// configuration as a whole. `seed` is the jitter seed to use when the
/// options have none (the shell draws it at random).
pub fn client_options(json: &str, seed: u64) -> Result<ClientOptions, Bad> {
    let doc = parse(json)?;
    let Some(o) = root(&doc, "TranscriptionClient", "{ url, provider }")? else {
        return Err(type_error(
            "options",
            "TranscriptionClient options must be an object like { url, provider }, got undefined"
                .into(),
        ));
    };
    o.check_keys(CLIENT_KEYS, "TranscriptionClient")?;
    let url = match o.get("url") {
        Js::Absent => {
            return Err(type_error(
                "url",
                "option `url` is required (a ws:// or wss:// URL)".into(),
            ))
        }
        Js::Str(s) => s.to_string(),
        other => return Err(type_error("url", must("url", "a string", &other))),
    };
    let provider = match o.string("provider")? {
        Some(p) => Provider::parse(&p).map_err(|e| range_error("provider", e.message()))?,
        None => Provider::Deepgram,
    };
    let mut cfg = Config::new(provider, url);
    match o
        .fields
        .iter()
        .find(|(k, _)| k == "protocols")
        .map(|(_, v)| v)
    {
        None => {}
        Some(Value::Array(items)) => {
            for (i, p) in items.iter().enumerate() {
                match p {
                    Value::String(s) => cfg.protocols.push(s.clone()),
                    other => {
                        let field = ["protocols[", &int(i as u64), "]"].concat();
                        return Err(type_error(
                            "protocols",
                            must(&field, "a string", &js(Some(other))),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(type_error(
                "protocols",
                must("protocols", "an array of strings", &js(Some(other))),
            ))
        }
    }
    if let Some((_, t)) = o.fields.iter().find(|(k, _)| k == "token") {
        // Never echo the token itself.
        cfg.token = Some(
            credential(t)
                .map_err(|why| type_error("token", ["option `token` must be ", why].concat()))?,
        );
    }
    let get_token = match o.get("getToken") {
        Js::Absent => false,
        Js::Special("function") => true,
        other => {
            return Err(type_error(
                "getToken",
                must(
                    "getToken",
                    "a function returning a token (or a Promise of one)",
                    &other,
                ),
            ))
        }
    };
    cfg.token_callback = get_token;
    let logger = match o.get("logger") {
        Js::Absent => false,
        Js::Special("function") => true,
        other => {
            return Err(type_error(
                "logger",
                must("logger", "a function taking a log entry", &other),
            ))
        }
    };
    let log_level = match o.string("logLevel")? {
        None if logger => LogLevel::Info,
        None => LogLevel::Off,
        Some(l) => LogLevel::parse(&l).ok_or_else(|| {
            range_error(
                "logLevel",
                must(
                    "logLevel",
                    "\"off\", \"error\", \"warn\", \"info\" or \"debug\"",
                    &Js::Str(&l),
                ),
            )
        })?,
    };
    cfg.language = o.string("language")?;
    if let Some(n) = o.integer("sampleRate")? {
        cfg.sample_rate = n.min(f64::from(u32::MAX)) as u32;
    }
    if let Some(n) = o.integer("channels")? {
        cfg.channels = n.min(f64::from(u16::MAX)) as u16;
    }
    if let Some(n) = o.integer("chunkMs")? {
        cfg.chunk_ms = n.min(f64::from(u32::MAX)) as u32;
    }
    match o.get("pushToTalk") {
        Js::Bool(true) => cfg.push_to_talk = Some(crate::core::config::PushToTalk::default()),
        Js::Bool(false) => cfg.push_to_talk = None,
        _ => {}
    }
    for (name, keys) in SECTIONS {
        if *name == "pushToTalk" && matches!(o.get(name), Js::Bool(_)) {
            continue;
        }
        let Some(s) = o.section(name)? else { continue };
        s.check_keys(keys, "TranscriptionClient")?;
        match *name {
            "reconnect" => {
                let c = &mut cfg.reconnect;
                s.ms("initialDelayMs", &mut c.initial_delay)?;
                s.ms("maxDelayMs", &mut c.max_delay)?;
                if let Some(m) = s.number("multiplier")? {
                    c.multiplier = m;
                }
                if let Some(j) = s.number("jitter")? {
                    c.jitter = j;
                }
                if let Some(m) = s.number("maxAttempts")? {
                    c.max_attempts = if m == f64::INFINITY {
                        None
                    } else if m.fract() == 0.0 && m >= 1.0 && m <= f64::from(u32::MAX) {
                        Some(m as u32)
                    } else {
                        return Err(range_error(
                            "reconnect.maxAttempts",
                            must(
                                "reconnect.maxAttempts",
                                "an integer >= 1 or Infinity",
                                &Js::Num(m),
                            ),
                        ));
                    };
                }
                s.ms("resetAfterMs", &mut c.reset_after)?;
            }
            "keepalive" => {
                let mut interval = Duration::ZERO;
                if !matches!(s.get("intervalMs"), Js::Absent) {
                    s.ms("intervalMs", &mut interval)?;
                    cfg.keepalive = Some(interval);
                }
            }
            "watchdog" => {
                s.ms("staleAfterMs", &mut cfg.stale_after)?;
                s.ms("stallAfterMs", &mut cfg.stall_after)?;
            }
            "pushToTalk" => {
                let mut p = crate::core::config::PushToTalk::default();
                // A pre-roll of 0 is allowed (no pre-roll): not `ms`.
                if let Some(n) = s.number("preRollMs")? {
                    if !(0.0..=10_000.0).contains(&n) {
                        return Err(range_error(
                            "pushToTalk.preRollMs",
                            must(
                                "pushToTalk.preRollMs",
                                "a number of milliseconds in 0..=10000",
                                &Js::Num(n),
                            ),
                        ));
                    }
                    p.pre_roll = Duration::from_millis(n.round() as u64);
                }
                s.ms("timeoutMs", &mut p.timeout)?;
                match s.string("connection")?.as_deref() {
                    None | Some("warm") => {}
                    Some("onDemand") => p.on_demand = true,
                    Some(other) => {
                        return Err(range_error(
                            "pushToTalk.connection",
                            must(
                                "pushToTalk.connection",
                                "\"warm\" or \"onDemand\"",
                                &Js::Str(other),
                            ),
                        ))
                    }
                }
                cfg.push_to_talk = Some(p);
            }
            _ => {
                s.ms("ttlMs", &mut cfg.ttl)?;
                if let Some(n) = s.integer("maxBytes")? {
                    cfg.max_bytes = n as usize;
                }
                if let Some(r) = s.number("replayRate")? {
                    cfg.replay_rate = r;
                }
            }
        }
    }
    o.ms("connectTimeoutMs", &mut cfg.connect_timeout)?;
    o.ms("closeTimeoutMs", &mut cfg.close_timeout)?;
    cfg.seed = match o.integer("seed")? {
        Some(s) => s as u64,
        None => seed,
    };
    cfg.validate()
        .map_err(|e| range_error(e.field, e.message()))?;
    if cfg.provider.wire().auth() == crate::core::protocol::Auth::FirstMessage
        && cfg.token.is_none()
        && !get_token
    {
        return Err(type_error(
            "token",
            "option `token` or `getToken` is required: this provider authenticates with its first message"
                .into(),
        ));
    }
    Ok(ClientOptions {
        config: cfg,
        get_token,
        log_level,
        logger,
    })
}
