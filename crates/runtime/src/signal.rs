//! Signal names as `kill` takes them: "KILL", "SIGKILL", "kill" or "9".

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

pub fn parse(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::Invalid(format!("unknown signal {s:?}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| Error::Invalid(format!("unknown signal {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").expect("KILL"), Signal::SIGKILL);
        assert_eq!(parse("sigterm").expect("sigterm"), Signal::SIGTERM);
        assert_eq!(parse("9").expect("9"), Signal::SIGKILL);
        assert_eq!(parse("SIGUSR1").expect("usr1"), Signal::SIGUSR1);
        assert!(parse("NOPE").is_err());
        assert!(parse("999").is_err());
    }
}
