//! Resource quantities (`500m`, `2`, `128Mi`, `1G`, `1e3`) as integers:
//! CPU in millicores, everything else in units, as the scheduler compares
//! them. The suffixes are those of Kubernetes' `resource.Quantity`.

/// `s` in thousandths (`"250m"` → 250, `"2"` → 2000); `None` when malformed.
pub fn milli(s: &str) -> Option<i64> {
    parse(s).map(|(n, scale)| n.saturating_mul(1000) / scale)
}

/// `s` in units, rounded up (`"128Mi"` → 134217728, `"100m"` → 1).
pub fn units(s: &str) -> Option<i64> {
    parse(s).map(|(n, scale)| (n + scale - 1) / scale)
}

/// The number as `n / scale`, both integers.
fn parse(s: &str) -> Option<(i64, i64)> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let multiplier: i64 = match suffix {
        "" => 1,
        "m" => return decimal(number).map(|(n, d)| (n, d * 1000)),
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        e if e.starts_with(['e', 'E']) => 10i64.checked_pow(e[1..].parse().ok()?)?,
        _ => return None,
    };
    decimal(number).map(|(n, d)| (n.saturating_mul(multiplier), d))
}

/// `"1.5"` → (15, 10).
fn decimal(s: &str) -> Option<(i64, i64)> {
    if s.is_empty() {
        return None;
    }
    match s.split_once('.') {
        None => s.parse().ok().map(|n| (n, 1)),
        Some((int, frac)) => {
            let scale = 10i64.checked_pow(frac.len() as u32)?;
            let int: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
            let frac: i64 = if frac.is_empty() {
                0
            } else {
                frac.parse().ok()?
            };
            Some((int * scale + frac, scale))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory() {
        assert_eq!(milli("250m"), Some(250));
        assert_eq!(milli("2"), Some(2000));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("0.1"), Some(100));
        assert_eq!(units("128Mi"), Some(128 << 20));
        assert_eq!(units("1G"), Some(1_000_000_000));
        assert_eq!(units("1e3"), Some(1000));
        assert_eq!(units("100m"), Some(1));
        assert_eq!(units("16Gi"), Some(16 << 30));
    }

    #[test]
    fn malformed() {
        for bad in ["", "Mi", "12Qi", "1.2.3", "abc"] {
            assert_eq!(units(bad), None, "{bad}");
        }
    }
}
