//! The browser client, compiled into the binary: plain HTML, CSS and ES modules, no build step.

macro_rules! assets {
    ($($path:literal => $file:literal, $type:literal;)*) => {
        /// The file served at `path`, with its content type.
        pub(crate) fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
            match path {
                "/" => Some(("text/html; charset=utf-8", include_bytes!("../../web/index.html"))),
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
    "/umpire.js" => "umpire.js", "text/javascript; charset=utf-8";
    "/connect4.js" => "connect4.js", "text/javascript; charset=utf-8";
    "/style.css" => "style.css", "text/css; charset=utf-8";
    "/admin" => "admin.html", "text/html; charset=utf-8";
    "/admin.js" => "admin.js", "text/javascript; charset=utf-8";
}
