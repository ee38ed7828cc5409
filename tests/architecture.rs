//! ARCHITECTURE.md's import rules, checked on the source: the protocol core stays sans-IO, the
//! retry options and the client never reach into the middleware.

use std::path::Path;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
    out
}

/// The lines of `folder`'s code (comments skipped) that name one of `forbidden`.
fn violations(folder: &str, forbidden: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    let mut found = Vec::new();
    for (path, text) in sources(&dir) {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in forbidden {
                if code.contains(word) {
                    found.push(format!("{path}:{}: {word}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_protocol_core_is_sans_io() {
    let found = violations(
        "protocol",
        &[
            "tower::",
            "tokio::",
            "hyper::",
            "crate::middleware",
            "crate::retry",
            "crate::client",
            "crate::dedupe",
            "crate::deadline",
            "crate::replay",
            "crate::body",
            "crate::redis",
            "redis::",
            "ResponseBody",
            "WechatLayer",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn retry_options_do_not_import_the_middleware() {
    let found = violations(
        "retry",
        &[
            "crate::middleware",
            "WechatLayer::",
            "crate::client",
            "crate::redis",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_client_does_not_import_the_layer() {
    let found = violations(
        "client",
        &[
            "crate::middleware",
            "crate::retry",
            "crate::dedupe",
            "crate::deadline",
            "crate::replay",
            "WechatLayer",
            "crate::endpoint",
            "crate::redis",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The Redis stores implement the store traits and nothing more: no layer, no protocol.
#[test]
fn the_redis_stores_import_only_the_store_traits() {
    let found = violations(
        "redis",
        &[
            "crate::middleware",
            "WechatLayer",
            "crate::endpoint",
            "crate::deadline",
            "crate::retry",
            "crate::codec",
            "crate::crypto",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The middleware's files import one way: the layer builds the service, the service makes the
/// future, and what they share (the config) imports none of them, so no loop runs through it.
#[test]
fn the_middleware_imports_no_loop_through_its_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/middleware");
    let rules: &[(&str, &[&str])] = &[
        (
            "config.rs",
            &["super::layer", "super::service", "super::future"],
        ),
        ("service.rs", &["super::layer"]),
        ("future.rs", &["super::layer", "super::service"]),
        (
            "open.rs",
            &["super::layer", "super::service", "super::future"],
        ),
        (
            "retry.rs",
            &["super::layer", "super::service", "super::future"],
        ),
    ];
    let mut found = Vec::new();
    for (file, forbidden) in rules {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in *forbidden {
                if code.contains(word) {
                    found.push(format!("{file}:{}: {word}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
