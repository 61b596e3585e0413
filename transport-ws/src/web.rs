//! The browser client, compiled into the binary: plain HTML, CSS and ES modules, no build step.
//! A folder of an embedder's own pages may be served instead (`WsConfig::web_dir`).

use std::path::{Component, Path, PathBuf};

macro_rules! assets {
    ($($path:literal => $file:literal, $type:literal;)*) => {
        /// The file served at `path`, with its content type.
        pub(crate) fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
            match path {
                "/" => Some(("text/html; charset=utf-8", include_bytes!("../../web/index.html"))),
                // The npm package's own file (`clients/js`): one copy for the pages and for npm.
                "/umpire.js" => Some((
                    "text/javascript; charset=utf-8",
                    include_bytes!("../../clients/js/umpire.js"),
                )),
                $($path => Some(($type, include_bytes!(concat!("../../web/", $file)))),)*
                _ => None,
            }
        }
    };
}

assets! {
    "/index.html" => "index.html", "text/html; charset=utf-8";
    "/connect4.html" => "connect4.html", "text/html; charset=utf-8";
    "/tally.html" => "tally.html", "text/html; charset=utf-8";
    "/colony.html" => "colony.html", "text/html; charset=utf-8";
    "/highcard.html" => "highcard.html", "text/html; charset=utf-8";
    "/connect4.js" => "connect4.js", "text/javascript; charset=utf-8";
    "/style.css" => "style.css", "text/css; charset=utf-8";
    "/admin" => "admin.html", "text/html; charset=utf-8";
    "/admin.js" => "admin.js", "text/javascript; charset=utf-8";
}

/// Paths the server answers itself, never from a folder of pages.
const RESERVED: [&str; 4] = ["/ws", "/tutorial", "/healthz", "/metrics"];

/// The file `path` names under `dir`, with its content type, if there is one. Only plain
/// names: a path with `..`, a drive or a root in it names nothing, nor does a hidden name
/// (`.git`, `.env`), nor a link that leads out of `dir`.
pub(crate) async fn from_dir(dir: &Path, path: &str) -> Option<(&'static str, bytes::Bytes)> {
    if RESERVED.contains(&path) || path.starts_with("/api/") {
        return None;
    }
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let mut file = PathBuf::from(dir);
    for part in Path::new(relative).components() {
        match part {
            Component::Normal(name) if !name.to_string_lossy().starts_with('.') => file.push(name),
            _ => return None,
        }
    }
    let (root, real) = (
        tokio::fs::canonicalize(dir).await.ok()?,
        tokio::fs::canonicalize(&file).await.ok()?,
    );
    if !real.starts_with(root) {
        return None;
    }
    let body = tokio::fs::read(&real).await.ok()?;
    Some((content_type(&file), bytes::Bytes::from(body)))
}

/// The content type a file's extension says.
fn content_type(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
