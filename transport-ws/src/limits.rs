//! Per-connection rate limiting, and the Host and Origin allow-lists.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Refusals in the current abuse window.
    refused: u32,
    window_start: Instant,
}

/// What the bucket says about one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Over the limit: answer `rate_limited`.
    Refuse,
    /// Refused so often in the last window that this is abuse: close with 1008.
    Abuse,
}

/// Refusals are counted over this long to tell bursts from sustained abuse.
const ABUSE_WINDOW: Duration = Duration::from_secs(10);

impl TokenBucket {
    /// `None` when `rate` is 0 (no limit).
    pub(crate) fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| {
            let now = Instant::now();
            TokenBucket {
                rate: f64::from(rate),
                burst: f64::from(burst.max(1)),
                tokens: f64::from(burst.max(1)),
                last: now,
                refused: 0,
                window_start: now,
            }
        })
    }

    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        if now.saturating_duration_since(self.window_start) > ABUSE_WINDOW {
            self.window_start = now;
            self.refused = 0;
        }
        self.refused += 1;
        // More refusals in one window than a whole burst: the client ignores `rate_limited`.
        if f64::from(self.refused) > self.burst {
            Verdict::Abuse
        } else {
            Verdict::Refuse
        }
    }
}

/// Whether a browser page from `origin` may open a WebSocket to a server reached as `host`.
///
/// Allowed: no Origin at all (native programs send none), the server's own host, localhost
/// and 127.0.0.1 on any port, and the configured extras (`*` allows everything).
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>, extra: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if extra
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
        return true;
    }
    matches!(hostname(authority), "localhost" | "127.0.0.1" | "[::1]")
}

/// The host name of an authority (`host:port`, `[v6]:port`, or a bare host).
fn hostname(authority: &str) -> &str {
    authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') {
            h
        } else {
            authority
        }
    })
}

/// Whether a request may be served under the name in its `Host` header.
///
/// A page on an attacker's domain that resolves to this server (DNS rebinding) reaches it
/// with the attacker's name as Host, and as Origin: the Origin check alone lets it through.
/// Allowed: an IP address, `localhost`, and the configured names (`*` allows any). No Host
/// at all (HTTP/1.0 tools) is allowed: a browser always sends one.
pub(crate) fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = hostname(host);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(name) || a.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 5).unwrap();
        for _ in 0..5 {
            assert_eq!(bucket.check(start), Verdict::Allow);
        }
        assert_eq!(bucket.check(start), Verdict::Refuse);
        // A tenth of a second buys one more message at 10/s.
        assert_eq!(
            bucket.check(start + Duration::from_millis(100)),
            Verdict::Allow
        );
        assert_eq!(
            bucket.check(start + Duration::from_millis(100)),
            Verdict::Refuse
        );
    }

    #[test]
    fn sustained_refusals_are_abuse() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1, 3).unwrap();
        let verdicts: Vec<Verdict> = (0..8).map(|_| bucket.check(start)).collect();
        assert_eq!(
            &verdicts[..3],
            &[Verdict::Allow, Verdict::Allow, Verdict::Allow]
        );
        assert_eq!(
            &verdicts[3..6],
            &[Verdict::Refuse, Verdict::Refuse, Verdict::Refuse]
        );
        assert_eq!(verdicts[6], Verdict::Abuse);
    }

    #[test]
    fn zero_rate_means_no_limit() {
        assert!(TokenBucket::new(0, 10).is_none());
    }

    #[test]
    fn hosts() {
        let named = vec!["play.example".to_owned()];
        for host in [
            "127.0.0.1:8080",
            "10.0.0.7",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
        ] {
            assert!(host_allowed(Some(host), &[]), "{host}");
        }
        assert!(host_allowed(None, &[]), "HTTP/1.0 tools send no Host");
        assert!(host_allowed(Some("play.example:8080"), &named));
        assert!(host_allowed(Some("PLAY.example"), &named));
        // A rebinding attacker's name, even one that looks local.
        for host in [
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
        ] {
            assert!(!host_allowed(Some(host), &named), "{host}");
        }
        assert!(host_allowed(Some("evil.example"), &["*".to_owned()]));
    }

    #[test]
    fn origins() {
        let extra = vec!["https://games.example".to_owned()];
        assert!(
            origin_allowed(None, Some("x:1"), &extra),
            "native clients send no Origin"
        );
        assert!(origin_allowed(
            Some("http://play.example:8080"),
            Some("play.example:8080"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://localhost:3000"),
            Some("x"),
            &[]
        ));
        assert!(origin_allowed(Some("http://127.0.0.1"), Some("x"), &[]));
        assert!(origin_allowed(
            Some("https://games.example"),
            Some("x"),
            &extra
        ));
        assert!(!origin_allowed(
            Some("https://evil.example"),
            Some("play.example"),
            &extra
        ));
        assert!(!origin_allowed(
            Some("http://localhost.evil.example"),
            Some("x"),
            &[]
        ));
        assert!(!origin_allowed(Some("null"), Some("x"), &[]));
        assert!(origin_allowed(
            Some("https://anything"),
            None,
            &["*".to_owned()]
        ));
    }
}
