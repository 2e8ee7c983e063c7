//! Durations: `--stop-timeout`-style Go durations (`1h2m3s`, `500ms`,
//! `1.5s`) as `--health-interval`, `logs --since 10m` and friends take them.

use std::time::Duration;

use super::{refuse, Result};

/// A Go duration: a sequence of decimal numbers each with a unit (`ns`,
/// `us`/`µs`, `ms`, `s`, `m`, `h`); a bare number is seconds (what the
/// docker CLI accepts for `--time`-like values). Negative durations are
/// refused.
pub fn duration(s: &str) -> Result<Duration> {
    if let Ok(n) = s.parse::<f64>() {
        if !n.is_finite() || n < 0.0 || s.starts_with('+') {
            refuse!("invalid duration '{s}'");
        }
        // Go's durations end at about 292 years; larger numbers of
        // seconds do not fit a Duration either.
        return match Duration::try_from_secs_f64(n) {
            Ok(d) => Ok(d),
            Err(_) => refuse!("invalid duration '{s}': too long"),
        };
    }
    if s.is_empty() {
        refuse!("invalid duration '': empty");
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            refuse!("invalid duration '{s}'");
        }
        if number_end == rest.len() {
            refuse!("invalid duration '{s}': missing unit");
        }
        let n: f64 = match rest[..number_end].parse() {
            Ok(n) => n,
            Err(_) => refuse!("invalid duration '{s}'"),
        };
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => refuse!("invalid duration '{s}': unknown unit '{unit}'"),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    match Duration::try_from_secs_f64(total) {
        Ok(d) => Ok(d),
        Err(_) => refuse!("invalid duration '{s}': too long"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        for (s, want) in [
            ("0", 0.0),
            ("5", 5.0),
            ("1.5", 1.5),
            ("1s", 1.0),
            ("1.5s", 1.5),
            ("500ms", 0.5),
            ("2m", 120.0),
            ("1h2m3s", 3723.0),
            ("1h30m", 5400.0),
            ("250us", 0.000_25),
            ("250µs", 0.000_25),
            ("100ns", 0.000_000_1),
        ] {
            let got = duration(s).expect(s).as_secs_f64();
            assert!((got - want).abs() < 1e-9, "{s}: {got} != {want}");
        }
    }

    #[test]
    fn bad_durations_are_refused_with_a_reason() {
        for (s, reason) in [
            ("", "empty"),
            ("s", "invalid duration 's'"),
            ("1x", "unknown unit 'x'"),
            ("1h30", "missing unit"),
            ("10 s", "unknown unit ' s'"),
            ("-1s", "invalid duration '-1s'"),
            ("-5", "invalid duration '-5'"),
            ("1..2s", "invalid duration '1..2s'"),
            ("h1", "invalid duration 'h1'"),
            ("1d", "unknown unit 'd'"),
            ("inf", "invalid duration 'inf'"),
            ("NaN", "invalid duration 'NaN'"),
            ("99999999999999999999h", "too long"),
            // Found by the grammars fuzz target: seconds past a Duration.
            ("1108777777777777777777777777", "too long"),
        ] {
            let e = duration(s).expect_err(s);
            assert!(e.0.contains(reason), "{s:?}: {e} lacks {reason:?}");
        }
    }
}
