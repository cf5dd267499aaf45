//! The options of `startMicrophone`, `startCapture`, `beginUtterance` and
//! `close`.

use super::*;

/// `startMicrophone(options)`.
pub fn capture_options(json: &str) -> Result<CaptureOptions, Bad> {
    let doc = parse(json)?;
    let mut out = CaptureOptions {
        microphone: Source::Request,
        ..CaptureOptions::default()
    };
    let Some(o) = root(&doc, "startMicrophone", "{ deviceId }")? else {
        return Ok(out);
    };
    o.check_keys(CAPTURE_KEYS, "startMicrophone")?;
    microphone_constraints(&o, &mut out)?;
    context_options(&o, &mut out)?;
    Ok(out)
}

/// `startCapture(options)`: `microphone` (default `true`: a device, its
/// options, or a `MediaStream`) and `systemAudio` (default `false`:
/// `true` asks the browser to share a tab or screen with its audio, or a
/// `MediaStream`), at least one of them.
pub fn start_capture_options(json: &str) -> Result<CaptureOptions, Bad> {
    let doc = parse(json)?;
    let mut out = CaptureOptions {
        microphone: Source::Request,
        ..CaptureOptions::default()
    };
    let Some(o) = root(
        &doc,
        "startCapture",
        "{ microphone: true, systemAudio: true }",
    )?
    else {
        return Ok(out);
    };
    o.check_keys(START_CAPTURE_KEYS, "startCapture")?;
    out.microphone = match o.get("microphone") {
        Js::Absent | Js::Bool(true) => Source::Request,
        Js::Bool(false) | Js::Null => Source::Off,
        Js::Special("MediaStream") => Source::Given,
        Js::Obj(fields) => {
            let m = Section {
                fields,
                prefix: "microphone.",
            };
            m.check_keys(MICROPHONE_KEYS, "startCapture")?;
            microphone_constraints(&m, &mut out)?;
            Source::Request
        }
        other => {
            return Err(type_error(
                "microphone",
                must(
                    "microphone",
                    "true, false, a MediaStream or { deviceId, echoCancellation, ... }",
                    &other,
                ),
            ))
        }
    };
    out.system_audio = match o.get("systemAudio") {
        Js::Absent | Js::Null | Js::Bool(false) => Source::Off,
        Js::Bool(true) => Source::Request,
        Js::Special("MediaStream") => Source::Given,
        other => {
            return Err(type_error(
                "systemAudio",
                must("systemAudio", "true, false or a MediaStream", &other),
            ))
        }
    };
    if out.microphone == Source::Off && out.system_audio == Source::Off {
        return Err(range_error(
            "microphone",
            "startCapture(options): nothing to capture; set `microphone` or `systemAudio`".into(),
        ));
    }
    context_options(&o, &mut out)?;
    Ok(out)
}

fn microphone_constraints(o: &Section<'_>, out: &mut CaptureOptions) -> Result<(), Bad> {
    out.device_id = o.string("deviceId")?;
    out.echo_cancellation = o.boolean("echoCancellation")?;
    out.noise_suppression = o.boolean("noiseSuppression")?;
    out.auto_gain_control = o.boolean("autoGainControl")?;
    Ok(())
}

fn context_options(o: &Section<'_>, out: &mut CaptureOptions) -> Result<(), Bad> {
    out.worklet_url = o.string("workletUrl")?;
    if let Some(r) = o.number("contextSampleRate")? {
        if !(8_000.0..=192_000.0).contains(&r) {
            return Err(range_error(
                "contextSampleRate",
                must(
                    "contextSampleRate",
                    "a number in 8000..=192000",
                    &Js::Num(r),
                ),
            ));
        }
        out.context_rate = Some(r);
    }
    Ok(())
}

/// `beginUtterance(options)`: the pre-roll asked for (`preRollMs`).
pub fn utterance_options(json: &str) -> Result<Option<Duration>, Bad> {
    let doc = parse(json)?;
    let Some(o) = root(&doc, "beginUtterance", "{ preRollMs }")? else {
        return Ok(None);
    };
    o.check_keys(UTTERANCE_KEYS, "beginUtterance")?;
    match o.number("preRollMs")? {
        None => Ok(None),
        Some(n) if (0.0..=10_000.0).contains(&n) => {
            Ok(Some(Duration::from_millis(n.round() as u64)))
        }
        Some(n) => Err(range_error(
            "preRollMs",
            must(
                "preRollMs",
                "a number of milliseconds in 0..=10000",
                &Js::Num(n),
            ),
        )),
    }
}

/// `close(options)`: `(flush, timeout)`.
pub fn close_options(json: &str) -> Result<(bool, Option<Duration>), Bad> {
    let doc = parse(json)?;
    let Some(o) = root(&doc, "close", "{ flush, timeoutMs }")? else {
        return Ok((true, None));
    };
    o.check_keys(CLOSE_KEYS, "close")?;
    let flush = o.boolean("flush")?.unwrap_or(true);
    let mut timeout = Duration::ZERO;
    o.ms("timeoutMs", &mut timeout)?;
    Ok((flush, (!timeout.is_zero()).then_some(timeout)))
}
