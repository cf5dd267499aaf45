//! A small JSON reader and string escaper.
//!
//! Server messages are parsed here rather than with serde_json, which would
//! add tens of kilobytes to the WebAssembly bundle for the handful of fields
//! the protocols read. Depth is bounded so hostile input cannot overflow the
//! stack; malformed input is an `Err`, never a panic.

use std::fmt;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Any number, as `f64`.
    Number(f64),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, fields in document order.
    Object(Vec<(String, Value)>),
}

/// Why a text is not valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

impl ParseError {
    /// The message, as [`Display`](fmt::Display) writes it, built without
    /// the formatting machinery.
    pub fn message(&self) -> String {
        [
            "invalid JSON at byte ",
            &super::text::int(self.offset as u64),
            ": ",
            self.what,
        ]
        .concat()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

const MAX_DEPTH: usize = 64;

impl Value {
    /// Parses a complete JSON document.
    pub fn parse(text: &str) -> Result<Value, ParseError> {
        let mut p = Parser {
            text,
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("trailing characters"));
        }
        Ok(v)
    }

    /// The field `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The element `i` of an array.
    pub fn at(&self, i: usize) -> Option<&Value> {
        match self {
            Value::Array(items) => items.get(i),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// `get(key)` as a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// `get(key)` as a number.
    pub fn num_field(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }
}

struct Parser<'a> {
    /// The document, for slicing strings out of it; `s` is its bytes.
    text: &'a str,
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError {
            offset: self.i,
            what,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') if self.eat(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Value::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Value::Object(fields));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let k = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth + 1)?;
            fields.push((k, v));
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(Value::Object(fields));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(Value::Array(items));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }

    /// Parses a JSON number without `str::parse::<f64>` (whose exact
    /// decimal algorithm costs ~10 KB of WebAssembly). Integers up to 2^53
    /// are exact; other values are within a few ulps, plenty for the
    /// timestamps, confidences and offsets servers send.
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        let bad = ParseError {
            offset: start,
            what: "invalid number",
        };
        let neg = self.eat(b"-");
        let mut mantissa: u64 = 0;
        let mut digits = 0u32;
        let mut exp10: i32 = 0;
        let mut any = false;
        while let Some(d @ b'0'..=b'9') = self.s.get(self.i).copied() {
            any = true;
            self.i += 1;
            if mantissa < 1 << 59 {
                mantissa = mantissa * 10 + u64::from(d - b'0');
                digits += 1;
            } else {
                exp10 += 1; // digits beyond u64 precision only scale
            }
        }
        if !any {
            return Err(bad);
        }
        if self.eat(b".") {
            let mut frac = false;
            while let Some(d @ b'0'..=b'9') = self.s.get(self.i).copied() {
                frac = true;
                self.i += 1;
                if mantissa < 1 << 59 {
                    mantissa = mantissa * 10 + u64::from(d - b'0');
                    exp10 -= 1;
                }
            }
            if !frac {
                return Err(bad);
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            let eneg = self.eat(b"-");
            if !eneg {
                self.eat(b"+");
            }
            let mut e: i32 = 0;
            let mut any = false;
            while let Some(d @ b'0'..=b'9') = self.s.get(self.i).copied() {
                any = true;
                self.i += 1;
                e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
            }
            if !any {
                return Err(bad);
            }
            exp10 = exp10.saturating_add(if eneg { -e } else { e });
        }
        let _ = digits;
        let mut v = mantissa as f64;
        if exp10 != 0 {
            // Dividing by an exact power of ten is more accurate than
            // multiplying by its inexact reciprocal.
            let p = 10f64.powi(exp10.unsigned_abs().min(400) as i32);
            v = if exp10 > 0 { v * p } else { v / p };
        }
        if !v.is_finite() {
            return Err(bad);
        }
        Ok(Value::Number(if neg { -v } else { v }))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or(self.err("short \\u escape"))?;
        let mut v = 0;
        for &d in digits {
            let d = char::from(d)
                .to_digit(16)
                .ok_or(self.err("bad \\u escape"))?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain bytes at once; the input is a &str, so
            // any run that stops at an ASCII byte is valid UTF-8, sliced
            // without validating it again (`get` checks the boundaries).
            let run = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(self.text.get(run..self.i).ok_or(self.err("utf-8"))?);
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = *self.s.get(self.i).ok_or(self.err("unterminated escape"))?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) && self.eat(b"\\u") {
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }
}

/// Appends `s` to `out` as a quoted JSON string.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_deepgram_results_message() {
        let v = Value::parse(
            r#"{"type":"Results","is_final":true,"start":1.5,"channel":{"alternatives":[{"transcript":"h\u00e9llo \"w\"","words":[]}]}}"#,
        )
        .unwrap();
        assert_eq!(v.str_field("type"), Some("Results"));
        assert_eq!(v.get("is_final").and_then(Value::as_bool), Some(true));
        assert_eq!(v.num_field("start"), Some(1.5));
        let alt = v
            .get("channel")
            .and_then(|c| c.get("alternatives"))
            .and_then(|a| a.at(0))
            .unwrap();
        assert_eq!(alt.str_field("transcript"), Some("héllo \"w\""));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{",
            "[1,",
            "{\"a\" 1}",
            "tru",
            "\"abc",
            "1e999",
            "[1]x",
            "{\"a\":\"\\x\"}",
            "\"\\u12\"",
            "\"\\u+123\"",
            "\"\\u12G4\"",
            "-",
            "1.",
            "1e",
            ".5",
            "--1",
        ] {
            assert!(Value::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let deep = "[".repeat(10_000);
        assert!(Value::parse(&deep).is_err());
    }

    #[test]
    fn numbers_parse_like_json() {
        let cases = [
            ("0", 0.0),
            ("-12", -12.0),
            ("3.25", 3.25),
            ("1e3", 1000.0),
            ("2.5E-3", 0.0025),
            ("9007199254740993", 9007199254740992.0),
            ("123456789012", 123456789012.0),
            ("0.1", 0.1),
            ("-1.5e+2", -150.0),
        ];
        for (text, want) in cases {
            let got = Value::parse(text).unwrap().as_f64().unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-15,
                "{text}: {got} != {want}"
            );
        }
    }

    #[test]
    fn surrogate_pairs_and_escapes_round_trip() {
        let v = Value::parse(r#""\ud83d\ude00 a\nb""#).unwrap();
        assert_eq!(v.as_str(), Some("😀 a\nb"));
        assert_eq!(
            Value::parse(r#""\u00E9\u00e9""#).unwrap().as_str(),
            Some("éé")
        );
        let mut out = String::new();
        push_str(&mut out, "q\"\\\n\u{1}é");
        assert_eq!(out, r#""q\"\\\n\u0001é""#);
        assert_eq!(Value::parse(&out).unwrap().as_str(), Some("q\"\\\n\u{1}é"));
    }
}
