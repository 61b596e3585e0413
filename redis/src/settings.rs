//! Reading Redis's settings at start: which of them could lose an acknowledged write.

use redis::aio::ConnectionManager;

/// What in Redis's settings could lose acknowledged writes, in plain words; empty if nothing.
/// A Redis that refuses `CONFIG GET` (some managed services) cannot be checked: a warning is
/// logged and nothing reported.
///
/// # Errors
/// Redis could not be reached.
pub async fn problems(conn: &mut ConnectionManager) -> redis::RedisResult<Vec<String>> {
    let mut found = Vec::new();
    let get = |name: &'static str| {
        let mut conn = conn.clone();
        async move {
            let pair: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut conn)
                .await;
            pair.map(|p| p.get(1).cloned())
        }
    };
    let appendonly = match get("appendonly").await {
        Ok(v) => v,
        Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => return Err(e),
        Err(e) => {
            tracing::warn!(
                "Redis refuses CONFIG GET ({e}): cannot check that it keeps acknowledged writes \
                 (needs appendonly yes, appendfsync always, maxmemory-policy noeviction)"
            );
            return Ok(found);
        }
    };
    if appendonly.as_deref() != Some("yes") {
        found.push(format!(
            "appendonly is {} (moves are not written to the append-only file)",
            appendonly.as_deref().unwrap_or("unset")
        ));
    }
    let fsync = get("appendfsync").await?;
    if fsync.as_deref() != Some("always") {
        found.push(format!(
            "appendfsync is {} (a power cut loses the last moves Redis acknowledged)",
            fsync.as_deref().unwrap_or("unset")
        ));
    }
    let policy = get("maxmemory-policy").await?;
    if policy.as_deref() != Some("noeviction") {
        found.push(format!(
            "maxmemory-policy is {} (Redis may evict game logs when memory runs short)",
            policy.as_deref().unwrap_or("unset")
        ));
    }
    Ok(found)
}
