//! Byte sizes: `-m 64m`, `--shm-size 1g`, `tmpfs-size=512k`.

use super::{refuse, Result};

/// Docker's binary size units (RAMInBytes): a decimal number with an
/// optional `b`, `k`, `m`, `g`, `t` or `p` (any case, optionally followed by
/// `b`: `64mb`), powers of 1024. A bare number is bytes.
pub fn bytes(s: &str) -> Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => refuse!("invalid size: '{s}'"),
    };
    let n: f64 = match number.parse() {
        Ok(n) if !number.is_empty() => n,
        _ => refuse!("invalid size: '{s}'"),
    };
    let total = n * (1u64 << shift) as f64;
    if !total.is_finite() || total >= i64::MAX as f64 {
        refuse!("invalid size: '{s}': too large");
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        for (s, want) in [
            ("100", 100),
            ("100b", 100),
            ("512k", 512 << 10),
            ("512kb", 512 << 10),
            ("64m", 64 << 20),
            ("64MB", 64 << 20),
            ("1g", 1 << 30),
            ("1.5g", 3 << 29),
            ("2t", 2 << 40),
            ("1p", 1 << 50),
            (" 8m ", 8 << 20),
            ("0", 0),
        ] {
            assert_eq!(bytes(s), Ok(want), "{s:?}");
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        for s in [
            "",
            "lots",
            "m",
            "-1m",
            "1x",
            "1mm",
            "1.2.3m",
            "1 m",
            "1e3",
            "99999999p",
            "0x10",
        ] {
            let e = bytes(s).expect_err(s);
            assert!(
                e.0.starts_with(&format!("invalid size: '{s}'")),
                "{s:?}: {e}"
            );
        }
    }
}
